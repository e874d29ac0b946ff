"""Records as Togai's JSON shapes: one definition for the API's answers (`api/render.py`) and
the data of the events that describe a change (`ledger/outbox.py`). `amount` says how an amount
is written: the API writes raw number literals, an event keeps the exact Decimal until it is
stored."""

from collections.abc import Callable
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any

from drawdown.ledger.credit import effective_status
from drawdown.ledger.records import AccountRecord, ApplicationRecord, AppliedLine, CreditRecord
from drawdown.ledger.wallet import WalletEntryRecord, WalletRecord

Amount = Callable[[Decimal], Any]


def exact(value: Decimal) -> Decimal:
    return value


def timestamp(value: datetime) -> str:
    """UTC, RFC 3339, the fraction of a second without trailing zeros (as PostgreSQL's JSON
    path writes it too): 2026-11-24T12:00:00Z, 2026-11-24T12:00:00.15Z."""
    value = value.astimezone(UTC)
    fraction = f".{value.microsecond:06d}".rstrip("0") if value.microsecond else ""
    # four digits of year always (strftime writes year 237 as "237", which is no RFC 3339)
    return f"{value.year:04d}-" + value.strftime("%m-%dT%H:%M:%S") + fraction + "Z"


def day(value: date | None) -> str | None:
    return value.isoformat() if value else None


def credit(record: CreditRecord, today: date, amount: Amount = exact) -> dict[str, Any]:
    return {
        "id": record.id,
        "accountId": record.account_id,
        "customerId": record.customer_id,
        "purpose": record.purpose,
        "status": effective_status(record.status, record.effective_until, today).value,
        "creditUnit": record.credit_unit,
        "creditAmount": amount(record.amounts.credit_amount),
        "holdAmount": amount(record.amounts.held),
        "consumedAmount": amount(record.amounts.consumed),
        "priority": record.priority,
        "applicableEntityIds": record.applicable_entity_ids,
        "effectiveFrom": record.effective_from.isoformat(),
        "effectiveUntil": day(record.effective_until),
        "grantorId": record.grantor_id,
        "idempotencyKey": record.idempotency_key,
        "createdAt": timestamp(record.created_at),
        "updatedAt": timestamp(record.updated_at),
    }


def balance(account: AccountRecord, amount: Amount = exact) -> dict[str, Any]:
    totals = account.totals
    return {
        "activeCredits": amount(totals.active_amount),
        "availableBalance": amount(totals.available_balance),
        "runningBalance": amount(totals.running_balance),
        "inapplicableCredits": amount(totals.inapplicable_left),
        "unit": account.invoice_currency,
        "lastUpdatedAt": timestamp(account.balance_updated_at),
    }


def application(record: ApplicationRecord, amount: Amount = exact) -> dict[str, Any]:
    return {
        "accountId": record.account_id,
        "invoiceId": record.invoice_id,
        "status": record.status.value,
        "asOf": record.as_of.isoformat(),
        "appliedAmount": amount(record.applied),
        "remainingAmount": amount(record.remaining),
        "lineItems": [
            {
                "entityId": line.entity_id,
                "entityType": line.entity_type.value,
                "amount": amount(line.amount),
                "appliedAmount": amount(line.applied),
                "remainingAmount": amount(line.remaining),
                "allocations": _allocations(line, amount),
            }
            for line in record.lines
        ],
        "createdAt": timestamp(record.created_at),
        "updatedAt": timestamp(record.updated_at),
    }


def _allocations(line: AppliedLine, amount: Amount) -> list[dict[str, Any]]:
    """The credits that paid, in drawdown order, then the wallet if it paid."""
    out: list[dict[str, Any]] = [
        {"creditId": a.credit_id, "amount": amount(a.amount)} for a in line.allocations
    ]
    if line.wallet is not None:
        out.append({"walletId": line.wallet.wallet_id, "amount": amount(line.wallet.amount)})
    return out


def wallet(record: WalletRecord, amount: Amount = exact) -> dict[str, Any]:
    """Togai's WalletBalanceResponse."""
    return {
        "id": record.id,
        "accountId": record.account_id,
        "customerId": record.customer_id,
        "balance": amount(record.balance),
        "creditUnit": record.currency,
        "status": record.status.value,
        "holdAmount": amount(record.held),
        "effectiveFrom": timestamp(record.effective_from),
        "createdAt": timestamp(record.created_at),
        "updatedAt": timestamp(record.updated_at),
    }


def wallet_entry(entry: WalletEntryRecord, amount: Amount = exact) -> dict[str, Any]:
    """Togai's WalletEntry."""
    return {
        "id": entry.id,
        "walletId": entry.wallet_id,
        "transactionType": entry.entry_type.value,
        "status": entry.status.value,
        "entityId": entry.entity_id,
        "amount": amount(entry.amount),
        "createdAt": timestamp(entry.created_at),
        "closingBalance": amount(entry.closing_balance),
    }
