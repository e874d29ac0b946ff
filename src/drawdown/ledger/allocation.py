"""Which credits pay which line items, and in what order."""

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import Decimal
from enum import StrEnum

from drawdown.ledger.money import sub, total

ALL_USAGE_METER_RATE_CARDS = "ALL_USAGE_METER_RATE_CARDS"
ALL_FIXED_FEE_RATE_CARDS = "ALL_FIXED_FEE_RATE_CARDS"


class EntityType(StrEnum):
    USAGE_METER_RATE_CARD = "USAGE_METER_RATE_CARD"
    FIXED_FEE_RATE_CARD = "FIXED_FEE_RATE_CARD"


_WILDCARD_FOR = {
    EntityType.USAGE_METER_RATE_CARD: ALL_USAGE_METER_RATE_CARDS,
    EntityType.FIXED_FEE_RATE_CARD: ALL_FIXED_FEE_RATE_CARDS,
}


@dataclass(frozen=True)
class LineItem:
    entity_id: str
    entity_type: EntityType
    amount: Decimal


@dataclass
class Candidate:
    """A credit that is active now, with what it has available to pay."""

    credit_id: str
    available: Decimal
    priority: int
    effective_from: date
    effective_until: date | None
    created_at: datetime
    applicable_entity_ids: Sequence[str] | None = None


@dataclass
class LineAllocation:
    item: LineItem
    allocations: list[tuple[str, Decimal]] = field(default_factory=list)

    @property
    def applied(self) -> Decimal:
        return total(amount for _, amount in self.allocations)

    @property
    def remaining(self) -> Decimal:
        return sub(self.item.amount, self.applied)


def applies_to(candidate: Candidate, item: LineItem) -> bool:
    return covers(candidate.applicable_entity_ids, item.entity_id, item.entity_type)


def covers(scope: Sequence[str] | None, entity_id: str, entity_type: EntityType) -> bool:
    """Whether a credit with this `applicableEntityIds` may pay for the entity."""
    if not scope:
        return True
    return entity_id in scope or _WILDCARD_FOR[entity_type] in scope


def in_effect(candidate: Candidate, as_of: date) -> bool:
    if candidate.effective_from > as_of:
        return False
    return candidate.effective_until is None or as_of <= candidate.effective_until


def drawdown_key(candidate: Candidate) -> tuple[int, int, date, date, datetime, str]:
    """Priority ascending, soonest expiry (none last), oldest start, oldest grant, id."""
    no_expiry = candidate.effective_until is None
    until = candidate.effective_until or date.max
    return (
        candidate.priority,
        int(no_expiry),
        until,
        candidate.effective_from,
        candidate.created_at,
        candidate.credit_id,
    )


def allocate(
    items: Iterable[LineItem], candidates: Iterable[Candidate], as_of: date
) -> list[LineAllocation]:
    """Pay the line items in order from the candidates in drawdown order.

    Candidates are consumed as they pay (their `available` goes down), so a credit shared by
    several line items is never spent twice.
    """
    ordered = sorted((c for c in candidates if in_effect(c, as_of)), key=drawdown_key)
    result = []
    for item in items:
        line = LineAllocation(item)
        owed = item.amount
        for candidate in ordered:
            if owed <= 0:
                break
            if candidate.available <= 0 or not applies_to(candidate, item):
                continue
            paid = min(owed, candidate.available)
            candidate.available = sub(candidate.available, paid)
            owed = sub(owed, paid)
            line.allocations.append((candidate.credit_id, paid))
        result.append(line)
    return result
