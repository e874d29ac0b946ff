"""Records to Togai's JSON shapes. Amounts leave through `money`, so they stay exact."""

from datetime import UTC, date, datetime
from typing import Any

from sqlalchemy import Row

from drawdown.api.jsonio import money
from drawdown.ledger.credit import effective_status
from drawdown.ledger.records import (
    AccountRecord,
    ApplicationRecord,
    AppliedLine,
    CreditRecord,
    TransactionRecord,
)
from drawdown.ledger.wallet import WalletEntryRecord, WalletRecord


def timestamp(value: datetime) -> str:
    """UTC, RFC 3339, the fraction of a second without trailing zeros (as PostgreSQL's JSON
    path writes it too): 2026-11-24T12:00:00Z, 2026-11-24T12:00:00.15Z."""
    value = value.astimezone(UTC)
    fraction = f".{value.microsecond:06d}".rstrip("0") if value.microsecond else ""
    # the year always in four digits: strftime's %Y writes the year 288 as "288"
    return f"{value.year:04d}-" + value.strftime("%m-%dT%H:%M:%S") + fraction + "Z"


def day(value: date | None) -> str | None:
    return value.isoformat() if value else None


def credit(record: CreditRecord, today: date) -> dict[str, Any]:
    return {
        "id": record.id,
        "accountId": record.account_id,
        "customerId": record.customer_id,
        "purpose": record.purpose,
        "status": effective_status(record.status, record.effective_until, today).value,
        "creditUnit": record.credit_unit,
        "creditAmount": money(record.amounts.credit_amount),
        "holdAmount": money(record.amounts.held),
        "consumedAmount": money(record.amounts.consumed),
        "priority": record.priority,
        "applicableEntityIds": record.applicable_entity_ids,
        "effectiveFrom": record.effective_from.isoformat(),
        "effectiveUntil": day(record.effective_until),
        "grantorId": record.grantor_id,
        "idempotencyKey": record.idempotency_key,
        "createdAt": timestamp(record.created_at),
        "updatedAt": timestamp(record.updated_at),
    }


def transaction(line: TransactionRecord) -> dict[str, Any]:
    return {
        "id": line.id,
        "creditId": line.credit_id,
        "transactionType": line.transaction_type.value,
        "invoiceId": line.invoice_id,
        "entityId": line.entity_id,
        "amount": money(line.amount),
        "createdAt": timestamp(line.created_at),
    }


def credit_details(
    record: CreditRecord, lines: list[TransactionRecord], today: date
) -> dict[str, Any]:
    out = credit(record, today)
    out["transactions"] = [transaction(line) for line in lines]
    return out


def balance(account: AccountRecord) -> dict[str, Any]:
    totals = account.totals
    return {
        "activeCredits": money(totals.active_amount),
        "availableBalance": money(totals.available_balance),
        "runningBalance": money(totals.running_balance),
        "inapplicableCredits": money(totals.inapplicable_left),
        "unit": account.invoice_currency,
        "lastUpdatedAt": timestamp(account.balance_updated_at),
    }


def account(record: AccountRecord) -> dict[str, Any]:
    return {
        "id": record.id,
        "togaiAccountId": record.id,
        "togaiCustomerId": record.customer_id,
        "name": record.name,
        "customerId": record.customer_id,
        "invoiceCurrency": record.invoice_currency,
        "status": record.status,
        **record.details,
    }


def customer(row: Row[Any]) -> dict[str, Any]:
    return {
        "id": row.id,
        "togaiCustomerId": row.id,
        "name": row.name,
        "primaryEmail": row.primary_email,
        "billingAddress": row.billing_address,
        "address": row.address,
        "status": row.status,
        "createdAt": timestamp(row.created_at),
        "updatedAt": timestamp(row.updated_at),
    }


def created_customer(row: Row[Any], created_account: AccountRecord | None) -> dict[str, Any]:
    """Togai's CreateCustomerResponse: the customer without status and times, with its account."""
    out = {k: v for k, v in customer(row).items() if k not in ("status", "createdAt", "updatedAt")}
    if row.settings is not None:
        out["settings"] = row.settings
    if created_account is not None:
        out["account"] = account(created_account)
    return out


def application(record: ApplicationRecord) -> dict[str, Any]:
    return {
        "accountId": record.account_id,
        "invoiceId": record.invoice_id,
        "status": record.status.value,
        "asOf": record.as_of.isoformat(),
        "appliedAmount": money(record.applied),
        "remainingAmount": money(record.remaining),
        "lineItems": [
            {
                "entityId": line.entity_id,
                "entityType": line.entity_type.value,
                "amount": money(line.amount),
                "appliedAmount": money(line.applied),
                "remainingAmount": money(line.remaining),
                "allocations": _allocations(line),
            }
            for line in record.lines
        ],
        "createdAt": timestamp(record.created_at),
        "updatedAt": timestamp(record.updated_at),
    }


def _allocations(line: AppliedLine) -> list[dict[str, Any]]:
    """The credits that paid, in drawdown order, then the wallet if it paid."""
    out: list[dict[str, Any]] = [
        {"creditId": a.credit_id, "amount": money(a.amount)} for a in line.allocations
    ]
    if line.wallet is not None:
        out.append({"walletId": line.wallet.wallet_id, "amount": money(line.wallet.amount)})
    return out


def wallet(record: WalletRecord) -> dict[str, Any]:
    """Togai's WalletBalanceResponse."""
    return {
        "id": record.id,
        "accountId": record.account_id,
        "customerId": record.customer_id,
        "balance": money(record.balance),
        "creditUnit": record.currency,
        "status": record.status.value,
        "holdAmount": money(record.held),
        "effectiveFrom": timestamp(record.effective_from),
        "createdAt": timestamp(record.created_at),
        "updatedAt": timestamp(record.updated_at),
    }


def wallet_entry(entry: WalletEntryRecord) -> dict[str, Any]:
    """Togai's WalletEntry."""
    return {
        "id": entry.id,
        "walletId": entry.wallet_id,
        "transactionType": entry.entry_type.value,
        "status": entry.status.value,
        "entityId": entry.entity_id,
        "amount": money(entry.amount),
        "createdAt": timestamp(entry.created_at),
        "closingBalance": money(entry.closing_balance),
    }
