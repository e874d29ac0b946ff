"""The ledger's state as plain objects: accounts, credits, ledger lines and applications. The
stores read rows into these and write them back; the rules in `ledger/` work on them only."""

from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal
from typing import Any

from drawdown.ledger.allocation import EntityType
from drawdown.ledger.application import ApplicationMode, ApplicationStatus
from drawdown.ledger.balance import BalanceTotals
from drawdown.ledger.credit import CreditAmounts, CreditStatus, TransactionType
from drawdown.ledger.money import format_amount, sub, total


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
    # the latest timestamp of a usage event applied on the account (None: none yet)
    usage_applied_through: datetime | None = None

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
            usage_applied_through=row.usage_applied_through,
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


@dataclass(frozen=True)
class Allocation:
    credit_id: str
    amount: Decimal


@dataclass(frozen=True)
class AppliedLine:
    entity_id: str
    entity_type: EntityType
    amount: Decimal
    allocations: tuple[Allocation, ...]

    @property
    def applied(self) -> Decimal:
        return total(a.amount for a in self.allocations)

    @property
    def remaining(self) -> Decimal:
        return sub(self.amount, self.applied)


@dataclass
class ApplicationRecord:
    account_id: str
    invoice_id: str
    status: ApplicationStatus
    mode: ApplicationMode
    as_of: date
    lines: list[AppliedLine]
    created_at: datetime
    updated_at: datetime
    request_hash: str = ""
    seq: int = 0

    @property
    def applied(self) -> Decimal:
        return total(line.applied for line in self.lines)

    @property
    def remaining(self) -> Decimal:
        return total(line.remaining for line in self.lines)

    @classmethod
    def from_row(cls, row: Any, account_id: str) -> "ApplicationRecord":
        lines = [
            AppliedLine(
                entity_id=item["entityId"],
                entity_type=EntityType(item["entityType"]),
                amount=Decimal(item["amount"]),
                allocations=tuple(
                    Allocation(a["creditId"], Decimal(a["amount"])) for a in item["allocations"]
                ),
            )
            for item in row.line_items
        ]
        return cls(
            account_id=account_id,
            invoice_id=row.invoice_id,
            status=ApplicationStatus(row.status),
            mode=ApplicationMode(row.mode),
            as_of=row.as_of,
            lines=lines,
            created_at=row.created_at,
            updated_at=row.updated_at,
            request_hash=row.request_hash,
            seq=row.seq,
        )

    def stored_lines(self) -> list[dict[str, Any]]:
        return [
            {
                "entityId": line.entity_id,
                "entityType": line.entity_type.value,
                "amount": format_amount(line.amount),
                "allocations": [
                    {"creditId": a.credit_id, "amount": format_amount(a.amount)}
                    for a in line.allocations
                ],
            }
            for line in self.lines
        ]
