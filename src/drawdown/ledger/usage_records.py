"""Stored usage events and what applying them records: per event and meter the price, which
credits paid how much on which ledger line, and what was left uncovered; per account and
meter the running sums."""

from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any

from drawdown.ledger.money import ZERO, add, total
from drawdown.ledger.usage import EventStatus, Rate


@dataclass(slots=True)
class PendingEvent:
    """An accepted event waiting to be applied, as the applier reads it."""

    seq: int
    account_seq: int
    id: str
    schema_name: str
    timestamp: datetime
    attributes: dict[str, Decimal]
    dimensions: dict[str, str]

    @property
    def order(self) -> tuple[datetime, str]:
        """Events of an account apply in (timestamp, id) order."""
        return (self.timestamp, self.id)


@dataclass(slots=True)
class UsageAllocation:
    credit_id: str
    amount: Decimal
    line_id: str  # the DEBITED line of the batch that carries it


@dataclass(slots=True)
class Charge:
    """One event priced on one meter, and how it was paid."""

    meter_seq: int
    meter_id: str
    quantity: Decimal
    rate: Rate
    cost: Decimal
    exact_cost: Decimal | None  # only when it differs from `cost`
    allocations: tuple[UsageAllocation, ...]
    uncovered: Decimal

    @property
    def paid_by_credits(self) -> Decimal:
        return total(allocation.amount for allocation in self.allocations)

    def stored(self) -> dict[str, Any]:
        """As kept in `usage_events.results`: amounts as exact decimal text (`str` of a
        Decimal is exact; `Decimal(text)` reads it back to the same value)."""
        return {
            "meterId": self.meter_id,
            "meterSeq": self.meter_seq,
            "quantity": str(self.quantity),
            "credits": str(self.rate.credits),
            "perQuantity": str(self.rate.per_quantity),
            "exactCost": None if self.exact_cost is None else str(self.exact_cost),
            "cost": str(self.cost),
            "allocations": [[a.credit_id, str(a.amount), a.line_id] for a in self.allocations],
            "uncovered": str(self.uncovered),
        }

    @classmethod
    def from_stored(cls, stored: dict[str, Any]) -> "Charge":
        exact = stored["exactCost"]
        return cls(
            meter_seq=int(stored["meterSeq"]),
            meter_id=stored["meterId"],
            quantity=Decimal(stored["quantity"]),
            rate=Rate(Decimal(stored["credits"]), Decimal(stored["perQuantity"])),
            cost=Decimal(stored["cost"]),
            exact_cost=None if exact is None else Decimal(exact),
            allocations=tuple(
                UsageAllocation(credit_id, Decimal(amount), line_id)
                for credit_id, amount, line_id in stored["allocations"]
            ),
            uncovered=Decimal(stored["uncovered"]),
        )


@dataclass(slots=True)
class AppliedEvent:
    seq: int
    account_seq: int
    timestamp: datetime
    status: EventStatus  # APPLIED or UNMETERED
    charges: tuple[Charge, ...]
    applied_at: datetime

    def stored_results(self) -> list[dict[str, Any]]:
        return [charge.stored() for charge in self.charges]

    def meter_ids(self) -> str | None:
        """`,um.a,um.b,`: what `?meterId=` filters on."""
        if not self.charges:
            return None
        return "," + ",".join(charge.meter_id for charge in self.charges) + ","


@dataclass(frozen=True)
class UsageSums:
    """Sums over events of one account on one meter (or what a batch adds to them)."""

    quantity: Decimal = ZERO
    cost: Decimal = ZERO
    paid_by_credits: Decimal = ZERO
    paid_by_wallet: Decimal = ZERO
    uncovered: Decimal = ZERO
    events: int = 0

    def __add__(self, other: "UsageSums") -> "UsageSums":
        return UsageSums(
            add(self.quantity, other.quantity),
            add(self.cost, other.cost),
            add(self.paid_by_credits, other.paid_by_credits),
            add(self.paid_by_wallet, other.paid_by_wallet),
            add(self.uncovered, other.uncovered),
            self.events + other.events,
        )

    @classmethod
    def of(cls, charge: Charge) -> "UsageSums":
        return cls.of_charges([charge])

    @classmethod
    def of_charges(cls, charges: list[Charge]) -> "UsageSums":
        return cls(
            total(c.quantity for c in charges),
            total(c.cost for c in charges),
            total(a.amount for c in charges for a in c.allocations),
            ZERO,
            total(c.uncovered for c in charges),
            len(charges),
        )
