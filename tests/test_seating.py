"""Appliers share the accounts out through seats (services/seating.py, store/seats.py), on
PostgreSQL: the seats held are the live appliers' sessions, each account has exactly one owner
among them, a freed seat's accounts go to the others, a backlog one applier declares is heard
by the others, and two appliers running on one database apply every event once, each its own
share, with a stuck owner's accounts taken by another once their events have waited long.
Each test runs on a database of its own, so no other test's server holds a seat in it."""

import asyncio
import contextlib
import uuid
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, timedelta

import asyncpg
import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import text

from drawdown.api.app import create_app
from drawdown.clock import SystemClock
from drawdown.services.applier import Applier
from drawdown.services.keys import create_key
from drawdown.services.seating import Seating
from drawdown.store import seats
from drawdown.store.database import Database, asyncpg_dsn
from drawdown.store.migrate import upgrade
from tests.conftest import ENGINE, create_postgres_database, drop_postgres_database
from tests.oracle import books_problems

pytestmark = pytest.mark.skipif(ENGINE != "postgresql", reason="seats are PostgreSQL's")

ACCOUNTS = 12
EVENTS_PER_ACCOUNT = 5


@pytest.fixture
def own_url() -> Iterator[str]:
    url = create_postgres_database()
    upgrade(url)
    yield url
    drop_postgres_database(url)


async def test_the_seats_held_are_the_live_sessions(own_url: str) -> None:
    dsn = asyncpg_dsn(own_url)
    first, second, third = [await asyncpg.connect(dsn) for _ in range(3)]
    try:
        assert await seats.take_seat(first) == 0
        assert await seats.take_seat(second) == 1
        assert await seats.held(third) == seats.Held((0, 1), frozenset())
        await seats.mark_behind(second, 1, True)
        assert (await seats.held(third)).behind == {1}
        await seats.mark_behind(second, 1, False)
        assert (await seats.held(third)).behind == frozenset()
        await seats.mark_behind(second, 1, True)
        await second.close()  # its session ends: its seat and its mark are free at once
        assert await seats.held(third) == seats.Held((0,), frozenset())
        assert await seats.take_seat(third) == 1
    finally:
        for conn in (first, second, third):
            await conn.close()


async def test_two_seatings_own_every_account_once_and_hear_each_others_backlog(
    own_url: str,
) -> None:
    dsn = asyncpg_dsn(own_url)
    a, b = Seating(dsn, 5), Seating(dsn, 5)
    try:
        assert a.owns(1) and a.owns(2)  # unseated: it owns everything, as if alone
        await a.refresh(False)
        await b.refresh(False)
        await a.refresh(False)  # hears of b's seat
        assert a.seated and b.seated and a.share[0] == b.share[0] == 2
        owners = [(a.owns(seq), b.owns(seq)) for seq in range(1, 201)]
        assert all(mine != theirs for mine, theirs in owners)
        assert sum(mine for mine, _ in owners) == 100
        await b.refresh(True)
        await a.refresh(False)
        assert a.others_behind and not b.others_behind
        await b.refresh(True)  # still behind: the mark is held once, not stacked
        await b.refresh(False)
        await a.refresh(False)
        assert not a.others_behind
        await b.close()
        await a.refresh(False)
        assert a.share == (1, 0) and all(a.owns(seq) for seq in range(1, 201))
    finally:
        await a.close()
        await b.close()


async def test_a_seating_whose_session_is_killed_sits_again_and_one_that_cannot_owns_all(
    own_url: str,
) -> None:
    dsn = asyncpg_dsn(own_url)
    a, b = Seating(dsn, 5), Seating(dsn, 5)
    admin = await asyncpg.connect(dsn)
    unreachable = Seating(dsn.replace(":5432/", ":1/"), 2)
    try:
        await a.refresh(False)
        await b.refresh(True)
        assert b.share == (2, 1)
        pid = await admin.fetchval(
            "SELECT pid FROM pg_locks WHERE locktype = 'advisory' AND objsubid = 2 "
            "AND classid::bigint = $1 AND objid::bigint = 1",
            seats.SEAT_CLASS,
        )
        # the backend ends a moment after the signal: its seat and mark go with it
        assert await admin.fetchval("SELECT pg_terminate_backend($1, 5000)", pid)
        await a.refresh(False)
        assert a.share == (1, 0) and not a.others_behind
        for _ in range(2):  # the first refresh may only find its connection gone
            await b.refresh(False)
        await a.refresh(False)
        assert b.seated and a.share[0] == b.share[0] == 2 and not a.others_behind
        # a database it cannot reach: unseated, it owns every account, as if alone
        await unreachable.refresh(True)
        assert not unreachable.seated and unreachable.owns(1) and unreachable.owns(2)
        assert not unreachable.others_behind
    finally:
        await admin.close()
        await a.close()
        await b.close()
        await unreachable.close()


@contextlib.asynccontextmanager
async def running_app(url: str, key: str) -> AsyncIterator[tuple[FastAPI, httpx.AsyncClient]]:
    """An app on its own database, as a server process has one, with its applier running."""
    db = Database(url)
    app = create_app(db, SystemClock(), usage_poll_seconds=0.05, usage_hold_seconds=0)
    applier: Applier = app.state.applier
    task = asyncio.create_task(applier.run())
    transport = httpx.ASGITransport(app=app)
    headers = {"Authorization": f"Bearer {key}"}
    try:
        async with httpx.AsyncClient(
            transport=transport, base_url="http://t", headers=headers, timeout=30
        ) as http:
            yield app, http
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        await applier.stop()
        await db.dispose()


async def new_org(url: str) -> tuple[str, str]:
    name = f"seats-{uuid.uuid4().hex[:8]}"
    db = Database(url)
    try:
        async with db.write() as conn:
            key = await create_key(conn, name, False, datetime.now(UTC))
    finally:
        await db.dispose()
    return name, key


async def seed(http: httpx.AsyncClient) -> None:
    for n in range(ACCOUNTS):
        customer = {
            "id": f"cust-{n}",
            "name": f"Customer {n}",
            "primaryEmail": "c@example.test",
            "address": {},
            "account": {"id": f"acc-{n}", "name": f"Account {n}"},
        }
        assert (await http.post("/customers", json=customer)).status_code < 300
        credit = {
            "accountId": f"acc-{n}",
            "purpose": "PREPAID_CREDIT",
            "effectiveFrom": (datetime.now(UTC).date() - timedelta(days=1)).isoformat(),
            "creditAmount": 1000,
            "priority": 1,
        }
        assert (await http.post("/credits", json=credit)).status_code < 300
    meter = {
        "id": "um.calls",
        "name": "Calls",
        "eventSchemaName": "call",
        "aggregation": "SUM",
        "attribute": "tokens",
        "creditRate": {"credits": 1, "perQuantity": 1},
    }
    assert (await http.post("/usage_meters", json=meter)).status_code < 300


def events(round_: int) -> list[dict[str, object]]:
    stamp = (datetime.now(UTC) - timedelta(minutes=1)).strftime("%Y-%m-%dT%H:%M:%SZ")
    return [
        {
            "schemaName": "call",
            "id": f"e-{round_}-{n}-{k}",
            "timestamp": stamp,
            "accountId": f"acc-{n}",
            "attributes": [{"name": "tokens", "value": "1"}],
            "dimensions": {},
        }
        for n in range(ACCOUNTS)
        for k in range(EVENTS_PER_ACCOUNT)
    ]


async def pending(url: str) -> int:
    db = Database(url)
    try:
        async with db.read() as conn:
            found = await conn.execute(
                text("SELECT count(*) FROM usage_events WHERE status = 'PENDING'")
            )
            return int(found.scalar_one())
    finally:
        await db.dispose()


async def wait_until_applied(url: str, seconds: float) -> None:
    deadline = asyncio.get_running_loop().time() + seconds
    while await pending(url):
        assert asyncio.get_running_loop().time() < deadline, "events still pending"
        await asyncio.sleep(0.05)


async def account_seqs(url: str) -> dict[str, int]:
    db = Database(url)
    try:
        async with db.read() as conn:
            rows = await conn.execute(text("SELECT id, seq FROM accounts"))
            return {row.id: row.seq for row in rows}
    finally:
        await db.dispose()


async def wait_seated(appliers: list[Applier], count: int) -> None:
    """Until every applier has a seat and sees `count` seats held."""
    for _ in range(200):
        seatings = [applier.seating for applier in appliers]
        if all(s is not None and s.seated and s.share[0] == count for s in seatings):
            return
        await asyncio.sleep(0.02)
    raise AssertionError("the appliers did not all take a seat")


async def test_two_appliers_apply_each_event_once_each_its_own_accounts(own_url: str) -> None:
    """Both processes store events for every account; each applier burns only the accounts it
    owns (the other's ingest does not wake it: its poll finds them), so each one's count of
    events applied is exactly its share, and the books and verify are whole."""
    name, key = await new_org(own_url)
    async with (
        running_app(own_url, key) as (first, http_a),
        running_app(own_url, key) as (
            second,
            http_b,
        ),
    ):
        appliers: list[Applier] = [first.state.applier, second.state.applier]
        await wait_seated(appliers, 2)
        await seed(http_a)
        for round_ in range(4):
            http = (http_a, http_b)[round_ % 2]
            answer = await http.post("/ingestBatch", json={"events": events(round_)})
            assert answer.status_code == 202, answer.text
        await wait_until_applied(own_url, 20)
        seqs = await account_seqs(own_url)
        per_account = 4 * EVENTS_PER_ACCOUNT
        for applier in appliers:
            assert applier.seating is not None
            owned = [n for n in range(ACCOUNTS) if applier.seating.owns(seqs[f"acc-{n}"])]
            assert 0 < len(owned) < ACCOUNTS
            assert applier.applied == len(owned) * per_account
        balance = await http_a.get("/accounts/acc-0/credit_balance")
        assert balance.json()["availableBalance"] == 1000 - per_account
    db = Database(own_url)
    try:
        assert await books_problems(db, SystemClock(), name) == []
    finally:
        await db.dispose()


async def test_a_stuck_owners_accounts_are_taken_once_their_events_waited_long(
    own_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A seat held by a session that never burns (an applier stuck, not crashed): the running
    applier burns its own accounts at once and the stuck one's once their events have waited
    STUCK_SECONDS."""
    from drawdown.services import applier as applier_module

    monkeypatch.setattr(applier_module, "STUCK_SECONDS", 1.0)
    name, key = await new_org(own_url)
    stuck = await asyncpg.connect(asyncpg_dsn(own_url))
    try:
        assert await seats.take_seat(stuck) == 0
        async with running_app(own_url, key) as (app, http):
            applier: Applier = app.state.applier
            await wait_seated([applier], 2)
            assert applier.seating is not None and applier.seating.share == (2, 1)
            await seed(http)
            seqs = await account_seqs(own_url)
            mine = sum(applier.seating.owns(seqs[f"acc-{n}"]) for n in range(ACCOUNTS))
            assert (await http.post("/ingestBatch", json={"events": events(0)})).status_code == 202
            await asyncio.sleep(0.5)
            assert applier.applied == mine * EVENTS_PER_ACCOUNT  # its own only, so far
            await wait_until_applied(own_url, 10)
            assert applier.applied == ACCOUNTS * EVENTS_PER_ACCOUNT
    finally:
        await stuck.close()
    db = Database(own_url)
    try:
        assert await books_problems(db, SystemClock(), name) == []
    finally:
        await db.dispose()
