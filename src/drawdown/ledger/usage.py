"""Usage meters and pricing (docs/usage.md): which meters an event matches, its quantity on
each, the rate in effect at its timestamp, and its exact cost."""

import functools
from dataclasses import dataclass, replace
from datetime import datetime
from decimal import (
    ROUND_DOWN,
    ROUND_HALF_EVEN,
    ROUND_HALF_UP,
    Context,
    Decimal,
    DivisionByZero,
    InvalidOperation,
    Overflow,
)
from enum import StrEnum

from drawdown.errors import BadRequest, first_repeat, shown
from drawdown.ledger.money import MAX_INTEGER_DIGITS, ZERO, check_amount

ONE = Decimal(1)
# cost is rounded to this many decimals (an amount's), once per event and meter
COST_PLACES = Decimal("1E-10")
# exactCost is the quotient to this many decimals: exact when it terminates within them
EXACT_PLACES = Decimal("1E-40")
COST_LIMIT = Decimal(10) ** MAX_INTEGER_DIGITS
# Wide enough that a product of two amounts (36 + 20 digits) is exact and a quotient keeps its
# first 40 decimals whatever its size (46 integer digits at most); never rounds silently.
_WIDE = Context(prec=150, rounding=ROUND_DOWN, traps=[InvalidOperation, DivisionByZero, Overflow])


class Aggregation(StrEnum):
    SUM = "SUM"
    COUNT = "COUNT"


class MeterStatus(StrEnum):
    ACTIVE = "ACTIVE"
    INACTIVE = "INACTIVE"


class EventStatus(StrEnum):
    PENDING = "PENDING"
    APPLIED = "APPLIED"
    UNMETERED = "UNMETERED"


@dataclass(frozen=True)
class Rate:
    credits: Decimal
    per_quantity: Decimal
    # None: in effect for every event, however early (a meter's first rate only)
    effective_from: datetime | None = None


@dataclass(frozen=True)
class Meter:
    seq: int
    org_seq: int
    id: str
    name: str
    event_schema_name: str
    aggregation: Aggregation
    attribute: str | None  # SUM only
    filters: tuple[tuple[str, str], ...]  # (dimension name, value)
    status: MeterStatus
    rates: tuple[Rate, ...]  # oldest first; never empty
    created_at: datetime
    updated_at: datetime

    @property
    def rate(self) -> Rate:
        """The latest rate."""
        return self.rates[-1]

    def rate_at(self, when: datetime) -> Rate | None:
        """The rate in effect at `when`: the latest one that starts at or before it."""
        for rate in reversed(self.rates):
            if rate.effective_from is None or rate.effective_from <= when:
                return rate
        return None


class CostOutOfRange(ValueError):
    """A cost of 10^18 or more: no amount can hold it."""


@dataclass(frozen=True)
class Price:
    cost: Decimal  # what is drawn: at most 10 decimals
    # the exact quotient when it differs from `cost` (to 40 decimals, cut when it does not end)
    exact: Decimal | None = None


@functools.lru_cache(maxsize=65536)
def price(quantity: Decimal, rate: Rate) -> Price:
    """quantity x credits / perQuantity, exact; rounded half-even to 10 decimals when it needs
    more, with the exact value kept. Raises CostOutOfRange at 10^18 or more."""
    product = _WIDE.multiply(quantity, rate.credits)
    quotient = _WIDE.divide(product, rate.per_quantity)
    cut = quotient.quantize(EXACT_PLACES, rounding=ROUND_DOWN, context=_WIDE)
    ends = _WIDE.multiply(cut, rate.per_quantity) == product
    # The true value is `cut` when it ends within 40 decimals, else strictly above it: a cut
    # that sits exactly on a half of the 10th decimal is then past the half, so it rounds up.
    rounding = ROUND_HALF_EVEN if ends else ROUND_HALF_UP
    cost = cut.quantize(COST_PLACES, rounding=rounding, context=_WIDE)
    if cost >= COST_LIMIT:
        raise CostOutOfRange("the cost reaches 10^18, more than an amount can hold")
    cost = check_amount(cost)
    if ends and cut == cost:
        return Price(cost)
    return Price(cost, _trimmed(cut))


def _trimmed(value: Decimal) -> Decimal:
    return value.normalize(_WIDE) if value else ZERO


def matches(
    meter: Meter,
    schema_name: str,
    attributes: dict[str, Decimal],
    dimensions: dict[str, str],
) -> bool:
    """Whether an event with this content counts on `meter` (an ACTIVE one, checked by the
    caller): its schema, every filter on its dimensions, and for SUM the attribute."""
    if meter.event_schema_name != schema_name:
        return False
    for name, value in meter.filters:
        if dimensions.get(name) != value:
            return False
    return meter.aggregation is Aggregation.COUNT or meter.attribute in attributes


def quantity(meter: Meter, attributes: dict[str, Decimal]) -> Decimal:
    """COUNT: 1; SUM: the attribute's value (the event matched, so it has it)."""
    if meter.aggregation is Aggregation.COUNT:
        return ONE
    assert meter.attribute is not None
    return attributes[meter.attribute]


def check_definition(
    aggregation: Aggregation, attribute: str | None, filters: tuple[tuple[str, str], ...]
) -> None:
    """A meter's definition makes sense: SUM names its attribute, COUNT none, and no dimension
    is filtered twice."""
    if aggregation is Aggregation.SUM and attribute is None:
        raise BadRequest("attribute: is required for a SUM meter (the attribute it sums)")
    if aggregation is Aggregation.COUNT and attribute is not None:
        raise BadRequest("attribute: must be absent for a COUNT meter, which counts events")
    repeat = first_repeat(name for name, _ in filters)
    if repeat is not None:
        index, name = repeat
        raise BadRequest(
            f"filters[{index}].field: {shown('dimensions.' + name)} appears twice; each "
            "dimension may be filtered once"
        )


def with_rate(meter: Meter, rate: Rate, now: datetime) -> Meter:
    """The meter with `rate` appended: it must start later than the latest rate."""
    latest = meter.rate.effective_from
    if rate.effective_from is None:
        raise BadRequest("effectiveFrom: is required for a new rate")
    if latest is not None and rate.effective_from <= latest:
        raise BadRequest(
            "effectiveFrom: must be later than the latest rate's effectiveFrom "
            f"({latest.isoformat().replace('+00:00', 'Z')})"
        )
    return replace(meter, rates=(*meter.rates, rate), updated_at=now)
