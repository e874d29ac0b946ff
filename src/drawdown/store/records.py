"""Rows as plain objects, so services never handle SQLAlchemy rows directly."""

from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal
from typing import Any

from drawdown.ledger.balance import BalanceTotals
from drawdown.ledger.credit import CreditAmounts, CreditStatus, TransactionType


@dataclass
class AccountRecord:
    seq: int
    org_seq: int
    id: str
    customer_seq: int
    customer_id: str
    name: str
    invoice_currency: str
    status: str
    details: dict[str, Any]
    created_at: datetime
    updated_at: datetime
    totals: BalanceTotals
    as_of: date
    valid_through: date | None
    balance_updated_at: datetime

    @classmethod
    def from_row(cls, row: Any) -> "AccountRecord":
        return cls(
            seq=row.seq,
            org_seq=row.org_seq,
            id=row.id,
            customer_seq=row.customer_seq,
            customer_id=row.customer_id,
            name=row.name,
            invoice_currency=row.invoice_currency,
            status=row.status,
            details=row.details,
            created_at=row.created_at,
            updated_at=row.updated_at,
            totals=BalanceTotals(
                row.bal_active_amount,
                row.bal_applicable_left,
                row.bal_applicable_held,
                row.bal_inapplicable_left,
            ),
            as_of=row.bal_as_of,
            valid_through=row.bal_valid_through,
            balance_updated_at=row.bal_updated_at,
        )


@dataclass
class CreditRecord:
    seq: int
    org_seq: int
    account_seq: int
    id: str
    account_id: str
    customer_id: str
    credit_unit: str
    purpose: str
    applicable_entity_ids: list[str] | None
    effective_from: date
    effective_until: date | None
    priority: int
    grantor_id: str | None
    idempotency_key: str | None
    request_hash: str
    status: CreditStatus
    amounts: CreditAmounts
    created_at: datetime
    updated_at: datetime

    @classmethod
    def from_row(cls, row: Any) -> "CreditRecord":
        return cls(
            seq=row.seq,
            org_seq=row.org_seq,
            account_seq=row.account_seq,
            id=row.id,
            account_id=row.account_id,
            customer_id=row.customer_id,
            credit_unit=row.credit_unit,
            purpose=row.purpose,
            applicable_entity_ids=row.applicable_entity_ids,
            effective_from=row.effective_from,
            effective_until=row.effective_until,
            priority=row.priority,
            grantor_id=row.grantor_id,
            idempotency_key=row.idempotency_key,
            request_hash=row.request_hash,
            status=CreditStatus(row.status),
            amounts=CreditAmounts(
                row.credit_amount,
                row.consumed_amount,
                row.hold_amount,
                row.expired_amount,
                row.voided_amount,
            ),
            created_at=row.created_at,
            updated_at=row.updated_at,
        )


@dataclass(frozen=True)
class TransactionRecord:
    id: str
    credit_id: str
    transaction_type: TransactionType
    amount: Decimal
    created_at: datetime
    invoice_id: str | None = None
    entity_id: str | None = None
