"""Random meters, rates, credits and events through a live server, against the usage model.

Each example is a new organization on a real `drawdown serve` (2 workers on PostgreSQL, so
both processes apply; 1 on SQLite): meters with filters, COUNT and SUM, rate histories and
deactivations; credits with priorities, scopes, start dates and expiries (some expired when
granted); then steps of /ingestBatch and /ingest calls with repeated ids (the same event
again, or another under the same id), events without a meter's attribute, late events, more
grants and rate changes between them. After each step the test waits until every account
shows nothing pending, applies the same events to tests/usage_reference.py, and requires the
server's per-meter totals, every event's cost, allocations and uncovered amount, the event
list, every credit and the balance to be the model's exactly. At the end `verify` must find
the organization's books sound.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any

import httpx
import pytest
from hypothesis import HealthCheck, given, note, settings
from hypothesis import event as tally
from hypothesis import strategies as st
from hypothesis.control import currently_in_test_context

from drawdown.clock import FixedClock
from drawdown.store.database import Database
from tests.conftest import ENGINE, new_key
from tests.helpers import decimal_json
from tests.live_server import live_server
from tests.oracle import books_problems
from tests.reference_model import FIXED_FEE, USAGE, Item, units
from tests.usage_http import (
    change_rate,
    compare_account,
    create_meter,
    grant,
    ingest_batch,
    ingest_one,
    make_account,
    post,
    set_active,
    wait_applied,
)
from tests.usage_reference import (
    COUNT,
    SUM,
    UNMETERED,
    Event,
    Meter,
    Organization,
    Rate,
)

WORKERS = 2 if ENGINE == "postgresql" else 1
ACCOUNTS = ["a0", "a1"]
SCHEMAS = ["call", "upload"]
ATTRIBUTES = ["tokens", "bytes"]
MODELS = ["large", "small"]
FOURTY_DAYS_IN_MINUTES = 40 * 24 * 60

rate_credits = st.one_of(
    st.sampled_from(["0", "1", "0.002", "0.0000000001", "3", "12.5", "7", "1000"]).map(Decimal),
    st.decimals(min_value=0, max_value=100, places=4),
)
per_quantities = st.sampled_from(["1", "3", "7", "1000", "0.3", "100000000000"]).map(Decimal)
meters = st.tuples(
    st.integers(0, len(SCHEMAS) - 1),
    st.sampled_from([COUNT, SUM]),
    st.integers(0, len(ATTRIBUTES) - 1),
    st.one_of(st.none(), st.none(), st.sampled_from(MODELS)),
    rate_credits,
    per_quantities,
    # a second rate, from this many minutes ago
    st.one_of(st.none(), st.tuples(rate_credits, per_quantities, st.integers(1, 50_000))),
    st.sampled_from([True, True, True, False]),  # active
)
# credits small enough that events drain them: allocations span credits and leave some uncovered
amounts = st.one_of(
    st.decimals(min_value=Decimal("0.01"), max_value=50, places=2),
    st.decimals(min_value=Decimal("0.0000000001"), max_value=1, places=10),
    st.integers(1, 10**4).map(Decimal),
)
SCOPES = ["none", "empty", "m0", "m1+m0", "usage", "fixed"]
credits = st.tuples(
    st.integers(0, len(ACCOUNTS) - 1),
    amounts,
    st.integers(0, 3),
    st.one_of(st.just(-45), st.integers(-40, 2)),  # effectiveFrom, days from today
    st.one_of(st.none(), st.integers(-2, 10)),  # effectiveUntil, days from today
    st.sampled_from(SCOPES),
)
value_texts = st.one_of(
    st.sampled_from(["0", "1", "1520", "0.5", "2.50"]),
    st.decimals(min_value=0, max_value=100, places=4).map(lambda d: format(d, "f")),
    st.decimals(min_value=0, max_value=10**6, places=4).map(lambda d: format(d, "f")),
)
attribute_values = st.one_of(st.none(), value_texts, value_texts, value_texts)
# minutes ago: a few shared values, so that timestamps tie and the id decides the order
minutes_ago = st.one_of(
    st.sampled_from([5, 60, 61]),
    st.integers(1, 3 * 24 * 60),
    st.integers(1, FOURTY_DAYS_IN_MINUTES),
)
events = st.tuples(
    st.integers(0, 40),  # id number: small, so ids repeat (same or different content)
    st.integers(0, len(ACCOUNTS) - 1),
    st.integers(0, len(SCHEMAS) - 1),
    minutes_ago,
    st.tuples(attribute_values, attribute_values),
    st.one_of(st.none(), st.sampled_from(MODELS)),
)
steps = st.one_of(
    st.tuples(st.just("batch"), st.lists(events, min_size=1, max_size=25)),
    st.tuples(st.just("batch"), st.lists(events, min_size=1, max_size=25)),
    st.tuples(st.just("batch"), st.lists(events, min_size=1, max_size=25)),
    st.tuples(st.just("single"), events),
    st.tuples(st.just("resend"), st.integers(0, 1000)),
    st.tuples(st.just("grant"), credits),
    st.tuples(
        st.just("rate"), st.integers(0, 3), rate_credits, per_quantities, st.integers(1, 50_000)
    ),
    st.tuples(st.just("toggle"), st.integers(0, 3)),
    st.tuples(st.just("void"), st.integers(0, 30)),
    # an invoice drawing on the same credits: HOLD (what usage may not take) or DEBIT
    st.tuples(
        st.sampled_from(["HOLD", "DEBIT"]),
        st.integers(0, len(ACCOUNTS) - 1),
        st.sampled_from(["um.m0", "ff.seat"]),
        amounts,
    ),
)


@dataclass(frozen=True)
class Live:
    base_url: str


@pytest.fixture(scope="module")
def live(database_url: str) -> Iterator[Live]:
    with live_server(database_url, workers=WORKERS) as server:
        yield Live(server.base_url)


class History:
    """One organization, driven through the API and the model side by side."""

    def __init__(self, http: httpx.AsyncClient, now: datetime) -> None:
        self.http = http
        self.start = now
        self.org = Organization(today=now.date())
        self.sent: list[Event] = []
        self.invoices = 0

    @property
    def today(self) -> date:
        return self.start.date()

    async def meter(self, index: int, spec: tuple[Any, ...]) -> None:
        schema, aggregation, attribute, model, credits_, per, change, active = spec
        meter = Meter(
            id=f"um.m{index}",
            name=f"Meter {index}",
            schema=SCHEMAS[schema],
            aggregation=aggregation,
            attribute=ATTRIBUTES[attribute] if aggregation == SUM else None,
            filters=(("dimensions.model", model),) if model else (),
            rates=[Rate(credits_, per)],
        )
        await create_meter(self.http, self.org, meter)
        if change is not None:
            later_credits, later_per, ago = change
            rate = Rate(later_credits, later_per, self.start - timedelta(minutes=ago))
            await change_rate(self.http, self.org, meter.id, rate)
        if not active:
            await set_active(self.http, self.org, meter.id, False)

    def scope(self, name: str) -> list[str] | None:
        return {
            "none": None,
            "empty": [],
            "m0": ["um.m0"],
            "m1+m0": ["um.m1", "um.m0"],
            "usage": ["ALL_USAGE_METER_RATE_CARDS"],
            "fixed": ["ALL_FIXED_FEE_RATE_CARDS"],
        }[name]

    async def grant(self, spec: tuple[Any, ...]) -> None:
        account, value, priority, start, until, scope = spec
        effective_from = self.today + timedelta(days=start)
        effective_until = None if until is None else self.today + timedelta(days=max(start, until))
        await grant(
            self.http,
            self.org,
            ACCOUNTS[account],
            value,
            priority,
            effective_from,
            effective_until,
            self.scope(scope),
        )

    def event(self, spec: tuple[Any, ...]) -> Event:
        number, account, schema, ago, values, model = spec
        attributes = tuple(
            (name, Decimal(text), "units")
            for name, text in zip(ATTRIBUTES, values, strict=True)
            if text is not None
        )
        return Event(
            id=f"e{number:03d}",
            schema=SCHEMAS[schema],
            account_id=ACCOUNTS[account],
            timestamp=self.start - timedelta(minutes=ago),
            attributes=attributes,
            dimensions=(("model", model),) if model else (),
        )

    async def void(self, pick: int) -> None:
        credits_ = [(a, c) for a, acc in self.org.accounts.items() for c in acc.credits]
        if not credits_:
            return
        account_id, credit_id = credits_[pick % len(credits_)]
        response = await self.http.post(f"/credits/{credit_id}/void")
        expected = self.org.accounts[account_id].void(credit_id)
        assert response.status_code == expected.status, response.text

    async def invoice(self, mode: str, account_id: str, entity: str, value: Decimal) -> None:
        self.invoices += 1
        invoice_id = f"inv-{self.invoices}"
        kind = USAGE if entity.startswith("um.") else FIXED_FEE
        body = {
            "invoiceId": invoice_id,
            "mode": mode,
            "lineItems": [{"entityId": entity, "entityType": kind, "amount": value}],
        }
        path = f"/accounts/{account_id}/credit_applications"
        response = await post(self.http, path, body)
        self.org.move_to(datetime.now(UTC).date())
        item = Item(entity, kind, units(value))
        answer = self.org.accounts[account_id].apply(invoice_id, mode, None, (item,))
        assert response.status_code == answer.status, response.text
        assert answer.application is not None
        shown = decimal_json(response)
        expected = answer.application.view()
        assert shown["lineItems"][0]["allocations"] == expected["lineItems"][0]["allocations"]  # type: ignore[index]

    async def step(self, op: tuple[Any, ...]) -> None:
        kind = op[0]
        if kind == "batch":
            # ids repeat, also after a refusal: the batch is still stored in one commit
            batch = [self.event(spec) for spec in op[1]]
            self.sent += batch
            await ingest_batch(self.http, self.org, batch)
        elif kind == "single":
            one = self.event(op[1])
            self.sent.append(one)
            await ingest_one(self.http, self.org, one)
        elif kind == "resend" and self.sent:
            await ingest_one(self.http, self.org, self.sent[op[1] % len(self.sent)])
        elif kind == "grant":
            await self.grant(op[1])
        elif kind == "rate" and op[1] < len(self.org.meters):
            meter = self.org.meters[f"um.m{op[1]}"]
            latest = meter.rates[-1].effective_from
            moment = self.start - timedelta(minutes=op[4])
            if latest is None or moment > latest:
                await change_rate(self.http, self.org, meter.id, Rate(op[2], op[3], moment))
        elif kind == "void":
            await self.void(op[1])
        elif kind in ("HOLD", "DEBIT"):
            await self.invoice(kind, ACCOUNTS[op[1]], op[2], op[3])
        elif kind == "toggle" and op[1] < len(self.org.meters):
            meter = self.org.meters[f"um.m{op[1]}"]
            await set_active(self.http, self.org, meter.id, not meter.active)
        await wait_applied(self.http, ACCOUNTS)
        self.org.apply_pending()
        for account_id in ACCOUNTS:
            await compare_account(self.http, self.org, account_id)


def _note(text: str) -> None:
    """Recorded for Hypothesis's report of a failing example (outside one, nothing)."""
    if currently_in_test_context():
        note(text)


async def run_history(
    live: Live,
    db: Database,
    meter_specs: list[tuple[Any, ...]],
    credit_specs: list[tuple[Any, ...]],
    ops: list[tuple[Any, ...]],
) -> History:
    org_name = f"usage-prop-{uuid.uuid4().hex}"
    key = await new_key(db, org=org_name)
    headers = {"Authorization": f"Bearer {key}"}
    async with httpx.AsyncClient(base_url=live.base_url, headers=headers, timeout=60) as http:
        history = History(http, datetime.now(UTC))
        for account_id in ACCOUNTS:
            await make_account(http, history.org, account_id)
        for index, spec in enumerate(meter_specs):
            await history.meter(index, spec)
        for spec in credit_specs:
            await history.grant(spec)
        _note(f"meters={meter_specs!r}\ncredits={credit_specs!r}")
        for op in ops:
            _note(f"step {op!r}")
            await history.step(op)
    clock = FixedClock(datetime.now(UTC))
    assert await books_problems(db, clock, org_name) == []
    _describe(history.org)
    return history


def _describe(org: Organization) -> None:
    """What the example exercised, for --hypothesis-show-statistics."""
    if not currently_in_test_context():
        return
    charges = [c for s in org.events.values() for c in s.charges]
    applied = sum(1 for s in org.events.values() if s.charges)
    tally(f"applied events: {'0' if not applied else '1-9' if applied < 10 else '10+'}")
    tally(f"some uncovered: {any(c.uncovered for c in charges)}")
    tally(f"an event paid by 2+ credits: {any(len(c.allocations) > 1 for c in charges)}")
    tally(f"a cost rounded: {any(c.price.rounded for c in charges)}")
    tally(f"an unmetered event: {any(s.status == UNMETERED for s in org.events.values())}")


# USAGE_EXAMPLES overrides the profile's number of examples (each is a whole history on a
# live server, so a short run may want fewer and a long one more).
EXAMPLES = os.environ.get("USAGE_EXAMPLES")


@settings(
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
    **({"max_examples": int(EXAMPLES)} if EXAMPLES else {}),
)
@given(
    st.lists(meters, min_size=2, max_size=4),
    st.lists(credits, min_size=2, max_size=6),
    # every history starts with a batch, then anything
    st.tuples(st.just("batch"), st.lists(events, min_size=3, max_size=25)).flatmap(
        lambda first: st.lists(steps, max_size=6).map(lambda rest: [first, *rest])
    ),
)
async def test_random_usage_matches_the_reference_model(
    live: Live,
    db: Database,
    meter_specs: list[tuple[Any, ...]],
    credit_specs: list[tuple[Any, ...]],
    ops: list[tuple[Any, ...]],
) -> None:
    await run_history(live, db, meter_specs, credit_specs, ops)


async def test_the_largest_costs_and_credits_are_exact(live: Live, db: Database) -> None:
    """Credits of 999999999999999999.9999999999 pay events of exactly that cost (SUM at 1 per
    1); the totals pass 18 digits before the point; the smallest cost after them is uncovered;
    a cost rounded from 1/3 and a half-even tie sit beside them."""
    largest = "999999999999999999.9999999999"
    history_ops = [
        ("batch", [(1, 0, 0, 30, (largest, None), None), (2, 0, 0, 29, (largest, None), None)]),
        ("batch", [(3, 0, 0, 28, ("0.0000000001", None), None)]),
        ("batch", [(4, 0, 1, 27, (None, "1"), None), (5, 0, 1, 26, (None, "25"), None)]),
    ]
    history = await run_history(
        live,
        db,
        [
            (0, SUM, 0, None, Decimal(1), Decimal(1), None, True),
            (1, SUM, 1, None, Decimal(1), Decimal(3), None, True),
            (1, SUM, 1, None, Decimal(1), Decimal(10**11), None, True),
        ],
        [(0, Decimal(largest), 0, -1, None, "m0"), (0, Decimal(largest), 1, -1, None, "m0")],
        history_ops,
    )
    totals = history.org.usage_view("a0")["meters"]
    assert totals[0]["cost"] == Decimal("1999999999999999999.9999999999")  # type: ignore[index]
    assert totals[0]["uncovered"] == Decimal("0.0000000001")  # type: ignore[index]
