"""Each usage check `drawdown verify` makes (services/verify_usage.py), proven by tampering with
exactly one row, in the style of tests/test_verify_detectors.py: sound books first, one change
through SQL, the very problem named, the change undone, sound books again."""

import copy
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import httpx
import pytest
from sqlalchemy import Executable, delete, insert, select, update

from drawdown.clock import FixedClock
from drawdown.store.database import Database
from drawdown.store.tables import (
    credit_transactions,
    organizations,
    usage_events,
    usage_purged_lines,
    usage_totals,
)
from tests.helpers import grant, make_account
from tests.oracle import books_problems


@dataclass(frozen=True)
class Books:
    """One organization's sound usage books: two meters, two credits, four events applied."""

    org: str
    paying: str  # 3, priority 1: pays e-1 and e-2 whole, then is consumed
    spare: str  # 10, priority 2: pays e-3 and e-4


@pytest.fixture
async def books(client: httpx.AsyncClient, db: Database, clock: FixedClock, org_name: str) -> Books:
    await make_account(client)
    for body in (
        {
            "id": "um.tokens",
            "name": "Tokens",
            "eventSchemaName": "llm_call",
            "aggregation": "SUM",
            "attribute": "tokens",
            "creditRate": {"credits": 1, "perQuantity": 3},
        },
        {
            "id": "um.calls",
            "name": "Calls",
            "eventSchemaName": "llm_call",
            "aggregation": "COUNT",
            "creditRate": {"credits": 1, "perQuantity": 1},
        },
    ):
        assert (await client.post("/usage_meters", json=body)).status_code == 201
    paying = await grant(client, amount=3, priority=1)
    spare = await grant(client, amount=10, priority=2)
    events = [
        {
            "schemaName": "llm_call",
            "id": f"e-{n}",
            "timestamp": f"2026-11-24T11:0{n}:00Z",
            "accountId": "acc-1",
            "attributes": [{"name": "tokens", "value": str(n)}],
        }
        for n in range(1, 5)
    ]
    assert (await client.post("/ingestBatch", json={"events": events})).status_code == 202
    await client._transport.app.state.applier.drain()  # type: ignore[attr-defined]
    assert await books_problems(db, clock, org_name) == []
    return Books(org_name, paying["id"], spare["id"])


async def _run(db: Database, statement: Executable) -> None:
    async with db.write() as conn:
        result = await conn.execute(statement)
        assert getattr(result, "rowcount", 1) == 1, "the tampering must touch exactly one row"


@asynccontextmanager
async def tampered(
    db: Database, clock: FixedClock, books: Books, do: Executable, undo: Executable
) -> AsyncIterator[list[str]]:
    await _run(db, do)
    try:
        yield await books_problems(db, clock, books.org)
    finally:
        await _run(db, undo)
    assert await books_problems(db, clock, books.org) == []


async def _org_seq(db: Database, books: Books) -> int:
    async with db.read() as conn:
        query = select(organizations.c.seq).where(organizations.c.name == books.org)
        return int((await conn.execute(query)).scalar_one())


async def _event(db: Database, books: Books, event_id: str) -> Any:
    query = select(usage_events).where(
        usage_events.c.org_seq == await _org_seq(db, books), usage_events.c.id == event_id
    )
    async with db.read() as conn:
        return (await conn.execute(query)).one()


def _set_event(seq: int, **values: Any) -> Executable:
    return update(usage_events).where(usage_events.c.seq == seq).values(**values)


def _has(problems: list[str], *fragments: str) -> bool:
    return any(all(fragment in p for fragment in fragments) for p in problems)


async def test_a_changed_usage_line(db: Database, clock: FixedClock, books: Books) -> None:
    event = await _event(db, books, "e-1")
    tokens = next(r for r in event.results if r["meterId"] == "um.tokens")
    line_id = tokens["allocations"][0][2]
    async with db.read() as conn:
        line = (
            await conn.execute(
                select(credit_transactions).where(credit_transactions.c.id == line_id)
            )
        ).one()
    changed = line.amount + Decimal("0.0000000001")
    table = credit_transactions
    do = update(table).where(table.c.id == line_id).values(amount=changed)
    undo = update(table).where(table.c.id == line_id).values(amount=line.amount)
    async with tampered(db, clock, books, do, undo) as problems:
        assert _has(problems, f"usage line {line_id}", "but its events drew")
        assert _has(problems, "DEBITED lines total", "but its consumedAmount")


async def test_an_allocation_changed_in_an_event(
    db: Database, clock: FixedClock, books: Books
) -> None:
    event = await _event(db, books, "e-2")
    results = copy.deepcopy(event.results)
    charge = next(r for r in results if r["meterId"] == "um.calls")
    credit_id, amount, line_id = charge["allocations"][0]
    charge["allocations"][0] = [credit_id, str(Decimal(amount) - Decimal("0.5")), line_id]
    do, undo = _set_event(event.seq, results=results), _set_event(event.seq, results=event.results)
    async with tampered(db, clock, books, do, undo) as problems:
        assert _has(problems, "usage event 'e-2' on meter um.calls", "credits paid 0.5")
        assert _has(problems, f"usage line {line_id}", "but its events drew")


async def test_a_cost_that_is_not_its_price(db: Database, clock: FixedClock, books: Books) -> None:
    event = await _event(db, books, "e-4")
    results = copy.deepcopy(event.results)
    charge = next(r for r in results if r["meterId"] == "um.tokens")
    # 4/3 costs 1.3333333333; claim 1.3333333334, the extra uncovered, so the sums still hold
    charge["cost"] = str(Decimal(charge["cost"]) + Decimal("1E-10"))
    charge["uncovered"] = str(Decimal(charge["uncovered"]) + Decimal("1E-10"))
    do, undo = _set_event(event.seq, results=results), _set_event(event.seq, results=event.results)
    async with tampered(db, clock, books, do, undo) as problems:
        assert _has(
            problems, "usage event 'e-4' on meter um.tokens", "is not quantity 4 at 1 per 3"
        )
        assert _has(problems, "usage totals", "um.tokens")


async def test_changed_running_totals(db: Database, clock: FixedClock, books: Books) -> None:
    async with db.read() as conn:
        query = select(usage_totals).where(usage_totals.c.org_seq == await _org_seq(db, books))
        kept = (await conn.execute(query)).all()
    row = next(r for r in kept if r.events == 4 and r.quantity == 10)  # tokens: 1+2+3+4
    where = (usage_totals.c.account_seq == row.account_seq) & (
        usage_totals.c.meter_seq == row.meter_seq
    )
    do = update(usage_totals).where(where).values(events=5)
    undo = update(usage_totals).where(where).values(events=4)
    async with tampered(db, clock, books, do, undo) as problems:
        assert _has(problems, "usage totals of account", "on meter um.tokens", "events=5")


async def test_an_event_whose_account_does_not_exist(
    db: Database, clock: FixedClock, books: Books
) -> None:
    event = await _event(db, books, "e-3")
    do, undo = (
        _set_event(event.seq, account_seq=10**9),
        _set_event(event.seq, account_seq=event.account_seq),
    )
    async with tampered(db, clock, books, do, undo) as problems:
        assert _has(problems, f"usage event 'e-3': its account {10**9} does not exist")


async def test_an_event_on_another_organizations_account(
    db: Database, clock: FixedClock, books: Books
) -> None:
    """The event moved to another organization: that organization's books name it."""
    event = await _event(db, books, "e-3")
    async with db.write() as conn:
        values = {"name": "verify-other", "created_at": clock.now()}
        other = (await conn.execute(insert(organizations).values(**values))).inserted_primary_key
    await _run(db, _set_event(event.seq, org_seq=other[0]))
    try:
        problems = await books_problems(db, clock, "verify-other")
    finally:
        await _run(db, _set_event(event.seq, org_seq=event.org_seq))
    assert _has(problems, "usage event 'e-3': its account", "is another organization's")
    assert await books_problems(db, clock, books.org) == []


async def test_an_applied_event_shown_as_unmetered(
    db: Database, clock: FixedClock, books: Books
) -> None:
    event = await _event(db, books, "e-3")
    do, undo = _set_event(event.seq, status="UNMETERED"), _set_event(event.seq, status="APPLIED")
    async with tampered(db, clock, books, do, undo) as problems:
        assert _has(problems, "usage event 'e-3': UNMETERED but priced on meters")


async def test_an_allocation_on_another_meters_line(
    db: Database, clock: FixedClock, books: Books
) -> None:
    event = await _event(db, books, "e-1")
    results = copy.deepcopy(event.results)
    calls = next(r for r in results if r["meterId"] == "um.calls")
    tokens = next(r for r in results if r["meterId"] == "um.tokens")
    # swap the lines the two meters were paid on: every amount still adds up per credit
    calls_line, tokens_line = calls["allocations"][0][2], tokens["allocations"][0][2]
    calls["allocations"][0][2], tokens["allocations"][0][2] = tokens_line, calls_line
    do, undo = _set_event(event.seq, results=results), _set_event(event.seq, results=event.results)
    async with tampered(db, clock, books, do, undo) as problems:
        assert _has(
            problems, "usage event 'e-1' on meter um.calls", f"line {tokens_line} of entity"
        )


async def test_purged_sums_that_no_event_was(db: Database, clock: FixedClock, books: Books) -> None:
    event = await _event(db, books, "e-1")
    line_id = event.results[0]["allocations"][0][2]
    do = insert(usage_purged_lines).values(line_id=line_id, amount=Decimal(1))
    undo = delete(usage_purged_lines).where(usage_purged_lines.c.line_id == line_id)
    async with tampered(db, clock, books, do, undo) as problems:
        assert _has(problems, f"usage line {line_id}", "but its events drew")
