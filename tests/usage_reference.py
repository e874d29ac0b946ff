"""An independent model of usage pricing and burn-down, written from usage.md and credits.md.

Like tests/reference_model.py (whose credits, drawdown order and balance it builds on) it
imports nothing from drawdown, so a wrong rule in the service cannot hide behind the same wrong
rule here. Costs are computed as exact fractions and rounded half-even to 10 decimals by
Python's own `round(Fraction)`, never through the service's decimal contexts; amounts are kept
as whole numbers of 10^-10 like the credits model.

What the model holds is one organization: its meters (filters, rate history, active or not),
its accounts (each a reference_model.Account), and every accepted event. Ingesting validates
and stores an event (or names why it is refused); `apply_pending` applies what was accepted,
per account in (timestamp, id) order, after whatever that account already applied. The views
are what the API must show.
"""

from __future__ import annotations

import decimal
import re
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from fractions import Fraction

from tests.reference_model import ACTIVE, USAGE, Account, Credit, Line, amount

# Decimal arithmetic here (sums of quantities) must never round: 600 digits, every trap set.
EXACT = decimal.Context(
    prec=600, Emax=10**6, Emin=-(10**6), traps=[decimal.Inexact, decimal.Rounded]
)

UNITS_PER_ONE = 10**10
MAX_COST_UNITS = 10**28 - 1  # one event's cost: 18 digits before the point, 10 after
ID_WINDOW = timedelta(days=45)
FUTURE_SLACK = timedelta(minutes=5)
# An attribute value: plain non-negative decimal text, 18 digits before the point, 10 after.
DECIMAL_TEXT = re.compile(r"[0-9]+(\.[0-9]+)?")
EXACT_COST_PLACES = 40

PENDING, APPLIED, UNMETERED = "PENDING", "APPLIED", "UNMETERED"
SUM, COUNT = "SUM", "COUNT"


# ------------------------------------------------------------------------------------------
# Pricing


@dataclass(frozen=True)
class Rate:
    credits: Decimal
    per_quantity: Decimal
    effective_from: datetime | None = None

    def view(self) -> dict[str, Decimal]:
        return {"credits": _plain(self.credits), "perQuantity": _plain(self.per_quantity)}


@dataclass(frozen=True)
class Price:
    """One event's cost on one meter: the exact fraction and the cost charged (in 10^-10)."""

    exact: Fraction
    cost_units: int

    @property
    def rounded(self) -> bool:
        return Fraction(self.cost_units, UNITS_PER_ONE) != self.exact

    @property
    def exact_decimal(self) -> Decimal | None:
        """The exact cost as a decimal when it has a finite expansion, else None."""
        return finite_decimal(self.exact)

    @property
    def exact_shown(self) -> Decimal:
        """What an event shows as `exactCost` (docs/usage.md): the exact quotient when it
        ends within 40 decimals, else cut toward zero after the 40th."""
        scaled = self.exact * 10**EXACT_COST_PLACES
        cut = scaled.numerator // scaled.denominator  # costs are never negative
        return _plain(Decimal(cut).scaleb(-EXACT_COST_PLACES, context=EXACT))

    @property
    def drawable(self) -> bool:
        """A cost of 10^18 or more is not an amount: it cannot be drawn."""
        return self.cost_units <= MAX_COST_UNITS


def price(quantity: Decimal, rate: Rate) -> Price:
    """quantity x credits / perQuantity, exact; if that needs more than 10 decimals, rounded
    half-even to 10 (round() of a Fraction rounds half to even)."""
    exact = Fraction(quantity) * Fraction(rate.credits) / Fraction(rate.per_quantity)
    return Price(exact, round(exact * UNITS_PER_ONE))


def finite_decimal(value: Fraction) -> Decimal | None:
    """The fraction as an exact Decimal if its denominator has only the factors 2 and 5."""
    denominator = value.denominator
    twos = fives = 0
    while denominator % 2 == 0:
        denominator //= 2
        twos += 1
    while denominator % 5 == 0:
        denominator //= 5
        fives += 1
    if denominator != 1:
        return None
    places = max(twos, fives)
    scaled = value * 10**places
    assert scaled.denominator == 1
    return _plain(Decimal(scaled.numerator).scaleb(-places))


def _plain(value: Decimal) -> Decimal:
    """The same value without trailing zeros (comparisons are by value anyway), in a context
    that raises rather than round."""
    return value.normalize(context=EXACT) if value != 0 else Decimal(0)


# ------------------------------------------------------------------------------------------
# Meters and events


@dataclass
class Meter:
    id: str
    name: str
    schema: str
    aggregation: str
    attribute: str | None
    filters: tuple[tuple[str, str], ...]
    rates: list[Rate]
    active: bool = True

    def selects(self, event: Event) -> bool:
        """The event's schema is the meter's and every filter equals the named dimension."""
        if event.schema != self.schema:
            return False
        dimensions = dict(event.dimensions)
        for name, value in self.filters:
            assert name.startswith("dimensions."), name
            if dimensions.get(name.removeprefix("dimensions.")) != value:
                return False
        return True

    def quantity(self, event: Event) -> Decimal | None:
        """COUNT: 1. SUM: the attribute's value; None when the event lacks it (a meter made
        after the event was accepted: the event does not match it)."""
        if self.aggregation == COUNT:
            return Decimal(1)
        for name, value, _unit in event.attributes:
            if name == self.attribute:
                return value
        return None

    def rate_at(self, moment: datetime) -> Rate | None:
        """The latest rate whose effectiveFrom is at or before the moment (none: the first)."""
        found = None
        for rate in self.rates:
            if rate.effective_from is None or rate.effective_from <= moment:
                found = rate
        return found

    def view(self) -> dict[str, object]:
        return {
            "id": self.id,
            "name": self.name,
            "eventSchemaName": self.schema,
            "aggregation": self.aggregation,
            "attribute": self.attribute,
            "filters": [{"field": f, "value": v} for f, v in self.filters],
            "status": "ACTIVE" if self.active else "INACTIVE",
            "creditRate": self.rates[-1].view(),
            "rates": [{**rate.view(), "effectiveFrom": rate.effective_from} for rate in self.rates],
        }


@dataclass(frozen=True)
class Event:
    """An event's content; two events with one id are the same when these are equal (the
    timestamp as an instant, attribute values as exact numbers)."""

    id: str | None
    schema: str
    account_id: str
    timestamp: datetime
    attributes: tuple[tuple[str, Decimal, str | None], ...] = ()
    dimensions: tuple[tuple[str, str], ...] = ()

    @property
    def day(self) -> date:
        return self.timestamp.astimezone(UTC).date()

    def same_content(self, other: Event) -> bool:
        def key(event: Event) -> tuple[object, ...]:
            return (
                event.schema,
                event.account_id,
                event.timestamp.astimezone(UTC),
                tuple(sorted((n, _plain(v), u or "") for n, v, u in event.attributes)),
                tuple(sorted(event.dimensions)),
            )

        return key(self) == key(other)

    def order_key(self) -> tuple[datetime, str]:
        assert self.id is not None
        return (self.timestamp.astimezone(UTC), self.id)


def attribute_value(text: str) -> Decimal | None:
    """A wire attribute value read exactly, or None when it is not a plain non-negative
    decimal of at most 18 digits before the point and 10 after."""
    if not DECIMAL_TEXT.fullmatch(text):
        return None
    whole, _, fraction = text.partition(".")
    if len(whole.lstrip("0")) > 18 or len(fraction.rstrip("0")) > 10:
        return None
    return Decimal(text)


@dataclass
class Charge:
    """What one (event, meter) cost and who paid it, in drawdown order."""

    meter_id: str
    quantity: Decimal
    rate: Rate
    price: Price
    allocations: list[tuple[str, int]]
    uncovered: int

    @property
    def paid(self) -> int:
        return sum(share for _, share in self.allocations)

    def view(self) -> dict[str, object]:
        view: dict[str, object] = {
            "meterId": self.meter_id,
            "quantity": _plain(self.quantity),
            "rate": self.rate.view(),
            "cost": amount(self.price.cost_units),
            "allocations": [{"creditId": c, "amount": amount(u)} for c, u in self.allocations],
            "uncovered": amount(self.uncovered),
        }
        return view


@dataclass
class Stored:
    event: Event
    status: str = PENDING
    charges: list[Charge] = field(default_factory=list)

    def view(self) -> dict[str, object]:
        return {
            "id": self.event.id,
            "accountId": self.event.account_id,
            "timestamp": self.event.timestamp.astimezone(UTC),
            "status": self.status,
            "meters": [charge.view() for charge in self.charges],
        }


# ------------------------------------------------------------------------------------------
# Ingestion outcomes


ACCEPTED, DUPLICATE = "accepted", "duplicate"
# refusals
NO_ID, UNKNOWN_ACCOUNT, BAD_VALUE, TOO_OLD, TOO_NEW = (
    "no id",
    "unknown account",
    "bad value",
    "too old",
    "in the future",
)
MISSING_ATTRIBUTE, TOO_COSTLY, CONFLICT = "missing attribute", "cost too large", "conflict"
# the status /ingest answers for each refusal
STATUS = {UNKNOWN_ACCOUNT: 404, CONFLICT: 409}


@dataclass(frozen=True)
class Outcome:
    kind: str
    # the meters a refusal may name (missing attribute, cost), the first by id first
    meter_ids: tuple[str, ...] = ()
    # a conflicting id that would also be refused for another reason: the rules do not say
    # which reason comes first, so either answer is right
    alternative: str | None = None

    @property
    def meter_id(self) -> str | None:
        return self.meter_ids[0] if self.meter_ids else None

    @property
    def accepted(self) -> bool:
        return self.kind in (ACCEPTED, DUPLICATE)

    @property
    def status(self) -> int:
        """What POST /ingest answers."""
        return 202 if self.accepted else STATUS.get(self.kind, 400)

    @property
    def statuses(self) -> set[int]:
        """Every answer that is right for it."""
        other = {STATUS.get(self.alternative, 400)} if self.alternative else set()
        return {self.status} | other


# ------------------------------------------------------------------------------------------
# One organization


@dataclass
class Organization:
    """The meters, accounts and events of one organization as usage.md says they evolve."""

    today: date
    meters: dict[str, Meter] = field(default_factory=dict)
    accounts: dict[str, Account] = field(default_factory=dict)
    events: dict[str, Stored] = field(default_factory=dict)
    # per account, the order its events were applied in
    applied: dict[str, list[str]] = field(default_factory=dict)

    # -- set-up ----------------------------------------------------------------------------

    def add_account(self, account_id: str) -> Account:
        account = Account(today=self.today)
        self.accounts[account_id] = account
        self.applied[account_id] = []
        return account

    def add_meter(self, meter: Meter) -> None:
        assert meter.id not in self.meters
        assert (meter.aggregation == SUM) == (meter.attribute is not None)
        self.meters[meter.id] = meter

    def change_rate(self, meter_id: str, rate: Rate) -> None:
        meter = self.meters[meter_id]
        latest = meter.rates[-1].effective_from
        assert rate.effective_from is not None
        assert latest is None or rate.effective_from > latest
        meter.rates.append(rate)

    def set_active(self, meter_id: str, active: bool) -> None:
        self.meters[meter_id].active = active

    def grant(
        self,
        account_id: str,
        credit_id: str,
        units: int,
        priority: int,
        effective_from: date,
        effective_until: date | None,
        scope: list[str] | None,
        created_at: datetime,
    ) -> Credit:
        return self.accounts[account_id].grant(
            credit_id, units, priority, effective_from, effective_until, scope, created_at
        )

    def move_to(self, day: date) -> None:
        self.today = max(self.today, day)
        for account in self.accounts.values():
            account.move_to(self.today)

    # -- ingestion -------------------------------------------------------------------------

    def judge(self, event: Event, now: datetime) -> Outcome:
        """Whether an event would be accepted now, without storing it. An event accepted
        before is a duplicate whatever has changed since (a retry must be acknowledged)."""
        if event.id is None or event.id == "":
            return Outcome(NO_ID)
        stored = self.events.get(event.id)
        if stored is not None:
            if stored.event.same_content(event):
                return Outcome(DUPLICATE)
            fresh = self.judge_fresh(event, now)
            return Outcome(CONFLICT, alternative=None if fresh.accepted else fresh.kind)
        return self.judge_fresh(event, now)

    def judge_fresh(self, event: Event, now: datetime) -> Outcome:
        """The judgment of an event as if its id had never been seen."""
        if event.account_id not in self.accounts:
            return Outcome(UNKNOWN_ACCOUNT)
        return self.judge_alone(event, now)

    def judge_alone(self, event: Event, now: datetime) -> Outcome:
        """The judgment of what an event says by itself (its timestamp, the meters), as if
        its id had never been seen and its account were known."""
        if event.timestamp < now - ID_WINDOW:
            return Outcome(TOO_OLD)
        if event.timestamp > now + FUTURE_SLACK:
            return Outcome(TOO_NEW)
        lacking: list[str] = []
        costly: list[str] = []
        for meter in sorted(self.meters.values(), key=lambda m: m.id):
            if not (meter.active and meter.selects(event)):
                continue
            quantity = meter.quantity(event)
            rate = meter.rate_at(event.timestamp)
            if quantity is None:
                lacking.append(meter.id)
            elif rate is not None and not price(quantity, rate).drawable:
                costly.append(meter.id)
        if lacking:
            return Outcome(MISSING_ATTRIBUTE, tuple(lacking))
        if costly:
            return Outcome(TOO_COSTLY, tuple(costly))
        return Outcome(ACCEPTED)

    def ingest(self, event: Event, now: datetime) -> Outcome:
        outcome = self.judge(event, now)
        if outcome.kind == ACCEPTED:
            assert event.id is not None
            self.events[event.id] = Stored(event)
        return outcome

    def ingest_batch(self, events: list[Event], now: datetime) -> list[Outcome]:
        """In order. An event refused for what it says alone holds no id: a later one with
        its id is judged on its own. The first that passes takes the id for the batch: a
        later one with the same content gets its answer (a duplicate when it was accepted),
        one with other content is refused, whatever the store said of the first."""
        taken: dict[str, tuple[Event, Outcome]] = {}
        outcomes: list[Outcome] = []
        for event in events:
            earlier = taken.get(event.id) if event.id else None
            if earlier is None:
                outcome = self.ingest(event, now)
                if event.id and self.judge_alone(event, now).accepted:
                    taken[event.id] = (event, outcome)
            elif not earlier[0].same_content(event):
                outcome = Outcome(CONFLICT)
            else:
                outcome = Outcome(DUPLICATE) if earlier[1].accepted else earlier[1]
            outcomes.append(outcome)
        return outcomes

    # -- applying --------------------------------------------------------------------------

    def pending(self, account_id: str) -> list[Stored]:
        return [
            s
            for s in self.events.values()
            if s.event.account_id == account_id and s.status == PENDING
        ]

    def apply_pending(self) -> None:
        """Every account applies what it has accepted and not yet applied, in (timestamp,
        id) order; what was applied before is never re-priced."""
        for account_id in self.accounts:
            for stored in sorted(self.pending(account_id), key=lambda s: s.event.order_key()):
                self._apply(stored)

    def _apply(self, stored: Stored) -> None:
        event = stored.event
        account = self.accounts[event.account_id]
        for meter in sorted(self.meters.values(), key=lambda m: m.id):
            if not (meter.active and meter.selects(event)):
                continue
            quantity = meter.quantity(event)
            rate = meter.rate_at(event.timestamp)
            if quantity is None or rate is None or not price(quantity, rate).drawable:
                continue
            charge = self._draw(account, meter.id, event.day, quantity, rate)
            stored.charges.append(charge)
        stored.status = APPLIED if stored.charges else UNMETERED
        assert event.id is not None
        self.applied[event.account_id].append(event.id)

    @staticmethod
    def _draw(account: Account, meter_id: str, day: date, quantity: Decimal, rate: Rate) -> Charge:
        """The cost drawn from the credits that can pay it, in drawdown order; the rest is
        uncovered. Usage never makes anything negative."""
        cost = price(quantity, rate)
        owed = cost.cost_units
        candidates = sorted(
            (
                c
                for c in account.credits.values()
                if c.status == ACTIVE and c.in_effect(day) and c.pays_for(meter_id, USAGE)
            ),
            key=Credit.order_key,
        )
        allocations: list[tuple[str, int]] = []
        for credit in candidates:
            if owed == 0:
                break
            share = min(owed, credit.available)
            if share <= 0:
                continue
            credit.consumed += share
            credit.lines.append(Line("DEBITED", share, None, meter_id))
            credit.settle_status()
            owed -= share
            allocations.append((credit.id, share))
        return Charge(meter_id, quantity, rate, cost, allocations, owed)

    # -- views -----------------------------------------------------------------------------

    def usage_view(
        self, account_id: str, start: datetime | None = None, end: datetime | None = None
    ) -> dict[str, object]:
        """The account's totals per meter over its applied events (timestamp in [start,
        end)), sorted by meter id; meters without events in the range are not listed."""
        totals: dict[str, dict[str, int | Decimal]] = {}
        pending = 0
        for stored in self.events.values():
            event = stored.event
            if event.account_id != account_id:
                continue
            if start is not None and event.timestamp < start:
                continue
            if end is not None and event.timestamp >= end:
                continue
            if stored.status == PENDING:
                pending += 1
            for charge in stored.charges:
                row = totals.setdefault(
                    charge.meter_id,
                    {"quantity": Decimal(0), "cost": 0, "paid": 0, "uncovered": 0, "events": 0},
                )
                row["quantity"] = EXACT.add(row["quantity"], charge.quantity)
                row["cost"] += charge.price.cost_units
                row["paid"] += charge.paid
                row["uncovered"] += charge.uncovered
                row["events"] += 1
        return {
            "accountId": account_id,
            "pending": pending,
            "meters": [
                {
                    "meterId": meter_id,
                    "quantity": _plain(Decimal(row["quantity"])),
                    "cost": amount(int(row["cost"])),
                    "paidByCredits": amount(int(row["paid"])),
                    "paidByWallet": Decimal(0),
                    "uncovered": amount(int(row["uncovered"])),
                    "events": int(row["events"]),
                }
                for meter_id, row in sorted(totals.items())
            ],
        }

    def applied_through(self, account_id: str) -> datetime | None:
        """With nothing pending: the latest timestamp of any event applied on the account."""
        assert not self.pending(account_id)
        moments = [
            s.event.timestamp.astimezone(UTC)
            for s in self.events.values()
            if s.event.account_id == account_id and s.status != PENDING
        ]
        return max(moments, default=None)

    def event_view(self, event_id: str) -> dict[str, object]:
        return self.events[event_id].view()

    def events_newest_first(
        self,
        account_id: str,
        meter_id: str | None = None,
        start: datetime | None = None,
        end: datetime | None = None,
    ) -> list[str]:
        """The account's events, newest first by (timestamp, id); with a meter, only those
        that meter priced; with a range, those whose timestamp is in [start, end)."""
        chosen = [
            s.event
            for s in self.events.values()
            if s.event.account_id == account_id
            and (meter_id is None or any(c.meter_id == meter_id for c in s.charges))
            and (start is None or s.event.timestamp >= start)
            and (end is None or s.event.timestamp < end)
        ]
        return [e.id for e in sorted(chosen, key=Event.order_key, reverse=True) if e.id]

    def debited_by_meter(self, credit_id: str) -> dict[str, Decimal]:
        """A credit's usage lines (DEBITED, no invoice) summed per meter: one line may pay many
        events of a batch, so only the sums per meter are determined."""
        for account in self.accounts.values():
            credit = account.credits.get(credit_id)
            if credit is None:
                continue
            sums: dict[str, int] = {}
            for line in credit.lines:
                if line.kind == "DEBITED" and line.invoice_id is None:
                    assert line.entity_id is not None
                    sums[line.entity_id] = sums.get(line.entity_id, 0) + line.units
            return {entity: amount(units) for entity, units in sums.items()}
        raise KeyError(credit_id)

    def check_invariants(self) -> None:
        """The model's own arithmetic: credits balance, each charge is paid + uncovered, and
        every credit's usage lines (DEBITED, no invoice) add up to what charges drew from it."""
        drawn: dict[str, int] = {}
        for stored in self.events.values():
            for charge in stored.charges:
                assert charge.paid + charge.uncovered == charge.price.cost_units
                assert charge.uncovered >= 0
                for credit_id, share in charge.allocations:
                    assert share > 0
                    drawn[credit_id] = drawn.get(credit_id, 0) + share
        for account in self.accounts.values():
            account.check_invariants()
            for credit_id, credit in account.credits.items():
                usage_lines = [
                    line.units
                    for line in credit.lines
                    if line.kind == "DEBITED" and line.invoice_id is None
                ]
                assert sum(usage_lines) == drawn.get(credit_id, 0), credit_id
