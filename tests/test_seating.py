"""Appliers share the accounts out through seats (services/seating.py, store/seats.py), on
PostgreSQL: the seats held are the live appliers' sessions, each account has exactly one owner
among them, a freed seat's accounts go to the others, a backlog one applier declares is heard
by the others, and two appliers running on one database apply every event once, each its own
share, with a stuck owner's accounts taken by another once their events have waited long.
Each test runs on a database of its own, so no other test's server holds a seat in it."""

import asyncio
import contextlib
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal

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
from tests.conftest import ENGINE
from tests.oracle import books_problems
from tests.usage_http import (
    compare_account,
    create_meter,
    grant,
    ingest_batch,
    make_account,
    wait_applied,
)
from tests.usage_reference import SUM, Event, Meter, Organization, Rate

pytestmark = pytest.mark.skipif(ENGINE != "postgresql", reason="seats are PostgreSQL's")

ACCOUNTS = 12
EVENTS_PER_ACCOUNT = 5


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
        await second.close()  # its session ends: its seat and its mark go with it
        # the server ends the session a moment after the connection closes
        expected = seats.Held((0,), frozenset())
        for _ in range(100):
            if await seats.held(third) == expected:
                break
            await asyncio.sleep(0.05)
        assert await seats.held(third) == expected
        assert await seats.take_seat(third) == 1
    finally:
        for conn in (first, second, third):
            await conn.close()


async def test_a_behind_mark_counts_only_while_its_session_is_heard_from(own_url: str) -> None:
    dsn = asyncpg_dsn(own_url)
    stuck, reader = await asyncpg.connect(dsn), await asyncpg.connect(dsn)
    try:
        seat = await seats.take_seat(stuck)
        assert seat == 0
        await seats.mark_behind(stuck, seat, True)
        assert await seats.held(reader) == seats.Held((0,), frozenset({0}))
        # the holder runs nothing more, as a stopped or hung applier would: its seat stays
        # (its session lives), its mark stops counting
        await asyncio.sleep(seats.MARK_FRESH_SECONDS + 0.5)
        assert await seats.held(reader) == seats.Held((0,), frozenset())
        await stuck.fetchval("SELECT 1")  # heard from again, as at a refresh
        assert await seats.held(reader) == seats.Held((0,), frozenset({0}))
    finally:
        await stuck.close()
        await reader.close()


@contextlib.asynccontextmanager
async def two_seatings(url: str) -> AsyncIterator[tuple[Seating, Seating]]:
    dsn = asyncpg_dsn(url)
    a, b = Seating(dsn, 5), Seating(dsn, 5)
    try:
        yield a, b
    finally:
        await a.close()
        await b.close()


async def test_two_seatings_own_every_account_once_and_hear_each_others_backlog(
    own_url: str,
) -> None:
    async with two_seatings(own_url) as (a, b):
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
        # the server ends b's session a moment after its connection closes
        for _ in range(100):
            await a.refresh(False)
            if a.share == (1, 0):
                break
            await asyncio.sleep(0.05)
        assert a.share == (1, 0) and all(a.owns(seq) for seq in range(1, 201))


async def test_a_seating_whose_session_is_killed_sits_again_and_one_that_cannot_owns_all(
    own_url: str,
) -> None:
    dsn = asyncpg_dsn(own_url)
    admin = await asyncpg.connect(dsn)
    unreachable = Seating(dsn.replace(":5432/", ":1/"), 2)
    try:
        async with two_seatings(own_url) as (a, b):
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


async def seed(http: httpx.AsyncClient) -> Organization:
    """The accounts, a credit each and a SUM meter, through the reference model's helpers."""
    org = Organization(today=datetime.now(UTC).date())
    yesterday = org.today - timedelta(days=1)
    for n in range(ACCOUNTS):
        await make_account(http, org, f"acc-{n}")
        await grant(http, org, f"acc-{n}", Decimal(1000), 1, yesterday, None, None)
    calls = Meter("um.calls", "Calls", "call", SUM, "tokens", (), [Rate(Decimal(1), Decimal(1))])
    await create_meter(http, org, calls)
    return org


def events(round_: int) -> list[Event]:
    at = datetime.now(UTC).replace(microsecond=0) - timedelta(minutes=1)
    return [
        Event(
            f"e-{round_}-{n}-{k}", "call", f"acc-{n}", at, (("tokens", Decimal(k + 1), None),), ()
        )
        for n in range(ACCOUNTS)
        for k in range(EVENTS_PER_ACCOUNT)
    ]


async def all_match_the_model(http: httpx.AsyncClient, org: Organization) -> None:
    await wait_applied(http, list(org.accounts), 20)
    org.apply_pending()
    for account_id in org.accounts:
        await compare_account(http, org, account_id)


async def account_seqs(url: str) -> dict[str, int]:
    db = Database(url)
    try:
        async with db.read() as conn:
            rows = await conn.execute(text("SELECT id, seq FROM accounts"))
            return {row.id: row.seq for row in rows}
    finally:
        await db.dispose()


async def books_clean(url: str, org_name: str) -> None:
    db = Database(url)
    try:
        assert await books_problems(db, SystemClock(), org_name) == []
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
    events applied is exactly its share; every account matches the reference model, and the
    books and verify are whole."""
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
        org = await seed(http_a)
        rounds = 4
        for round_ in range(rounds):
            await ingest_batch((http_a, http_b)[round_ % 2], org, events(round_))
        await all_match_the_model(http_a, org)
        seqs = await account_seqs(own_url)
        for applier in appliers:
            assert applier.seating is not None
            owned = [n for n in range(ACCOUNTS) if applier.seating.owns(seqs[f"acc-{n}"])]
            assert 0 < len(owned) < ACCOUNTS
            assert applier.applied == len(owned) * rounds * EVENTS_PER_ACCOUNT
    await books_clean(own_url, name)


async def test_a_stuck_owners_accounts_are_taken_once_their_events_waited_long(
    own_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A seat held by a session that never burns (an applier stuck, not crashed): the running
    applier burns its own accounts at once and the stuck one's once their events have waited
    STUCK_SECONDS."""
    from drawdown.services import applier as applier_module

    stuck_seconds = 3.0
    monkeypatch.setattr(applier_module, "STUCK_SECONDS", stuck_seconds)
    name, key = await new_org(own_url)
    stuck = await asyncpg.connect(asyncpg_dsn(own_url))
    try:
        assert await seats.take_seat(stuck) == 0
        async with running_app(own_url, key) as (app, http):
            applier: Applier = app.state.applier
            await wait_seated([applier], 2)
            assert applier.seating is not None and applier.seating.share == (2, 1)
            org = await seed(http)
            seqs = await account_seqs(own_url)
            mine = sum(applier.seating.owns(seqs[f"acc-{n}"]) for n in range(ACCOUNTS))
            loop = asyncio.get_running_loop()
            ingested = loop.time()
            await ingest_batch(http, org, events(0))
            # its own within a gather (0.5 s) and a margin for a loaded machine, and nothing
            # of the stuck seat's before their events have waited the stuck time
            while applier.applied < mine * EVENTS_PER_ACCOUNT and loop.time() < ingested + 2.5:
                await asyncio.sleep(0.02)
            read_at, applied = loop.time(), applier.applied
            assert read_at < ingested + stuck_seconds
            assert applied == mine * EVENTS_PER_ACCOUNT  # its own only, so far
            await all_match_the_model(http, org)
            assert applier.applied == ACCOUNTS * EVENTS_PER_ACCOUNT
    finally:
        await stuck.close()
    await books_clean(own_url, name)
