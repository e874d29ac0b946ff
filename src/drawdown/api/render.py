"""Records to Togai's JSON shapes. Amounts leave through `money`, so they stay exact."""

from datetime import date
from typing import Any

from sqlalchemy import Row

from drawdown.api.jsonio import money
from drawdown.ledger import shapes
from drawdown.ledger.records import (
    AccountRecord,
    ApplicationRecord,
    CreditRecord,
    TransactionRecord,
)
from drawdown.ledger.shapes import timestamp
from drawdown.ledger.wallet import WalletEntryRecord, WalletRecord


def credit(record: CreditRecord, today: date) -> dict[str, Any]:
    return shapes.credit(record, today, money)


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
    return shapes.balance(account, money)


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
    return shapes.application(record, money)


def wallet(record: WalletRecord) -> dict[str, Any]:
    """Togai's WalletBalanceResponse."""
    return shapes.wallet(record, money)


def wallet_entry(entry: WalletEntryRecord) -> dict[str, Any]:
    """Togai's WalletEntry."""
    return shapes.wallet_entry(entry, money)
