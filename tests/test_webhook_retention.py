"""The outbox's clean-up (docs/webhooks.md, "Retention"): finished deliveries (SUCCEEDED,
FAILED) and their attempts go once older than the retention, then the events no delivery
refers to; a PENDING delivery and its event stay however old; the sweep loop of every server
runs it; the setting and the command.

The test database is shared by the session, so a clean-up here deletes other tests' old rows
too: what is asserted is read through this test's own organization."""

import asyncio
import contextlib
import os
import subprocess
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncConnection

from drawdown.clock import FixedClock
from drawdown.config import Settings, SettingsError
from drawdown.jobs.expiry import run_periodically
from drawdown.jobs.outbox import purge_outbox
from drawdown.store import outbox_retention
from drawdown.store import webhooks as webhook_store
from drawdown.store.database import Database
from drawdown.store.tables import webhook_endpoints
from tests.conftest import ENGINE, NOW
from tests.helpers import decimal_json, grant, make_account
from tests.live_server import DRAWDOWN
from tests.test_webhooks import LOCAL, Caller, _caller, deliver, events_of, register
from tests.webhook_receiver import receiver


@pytest.fixture
async def caller(db: Database, clock: FixedClock) -> AsyncIterator[Caller]:
    async for found in _caller(db, clock, LOCAL):
        yield found


async def log_of(caller: Caller, endpoint: dict[str, Any]) -> list[dict[str, Any]]:
    response = await caller.http.get(f"/webhook_endpoints/{endpoint['id']}/deliveries")
    assert response.status_code == 200, response.text
    return list(decimal_json(response)["data"])


async def test_finished_deliveries_and_unneeded_events_go_pending_ones_stay(
    db: Database, caller: Caller
) -> None:
    with receiver() as good, receiver() as bad, receiver() as later:
        bad.answer = lambda _id, _attempt: 500
        succeeding = await register(caller, good)
        failing = await register(caller, bad)
        waiting = await register(caller, later)
        await make_account(caller.http)
        await grant(caller.http, amount=1)  # E1: to all three
        disabled = await caller.http.patch(
            f"/webhook_endpoints/{waiting['id']}", json={"status": "DISABLED"}
        )
        assert disabled.status_code == 200
        await grant(caller.http, amount=2)  # E2: to the two enabled ones
        for _ in range(3):  # the first attempts and the schedule's two retries
            await deliver(caller)
            await asyncio.sleep(0.3)
        await deliver(caller)
        first, second = await events_of(caller)
        assert [d["status"] for d in await log_of(caller, succeeding)] == ["SUCCEEDED"] * 2
        assert [d["status"] for d in await log_of(caller, failing)] == ["FAILED"] * 2
        assert [d["status"] for d in await log_of(caller, waiting)] == ["PENDING"]

        # within the retention (30 days): nothing goes
        kept = await purge_outbox(db, NOW + timedelta(days=29), 30)
        assert len(await log_of(caller, succeeding)) == 2
        assert len(await log_of(caller, failing)) == 2
        assert len(await events_of(caller)) == 2

        # past it: the finished deliveries and their attempts, and E2, which nothing needs;
        # E1 stays with the delivery that waits for its endpoint, however old
        later_on = datetime.now(UTC) + timedelta(days=31)
        purged = await purge_outbox(db, later_on, 30, per_transaction=1)
        assert purged.deliveries >= 4 + kept.deliveries and purged.events >= 1
        assert await log_of(caller, succeeding) == []
        assert await log_of(caller, failing) == []
        (pending,) = await log_of(caller, waiting)
        assert pending["eventId"] == first["id"]
        assert [e["id"] for e in await events_of(caller)] == [first["id"]]
        assert second["id"] not in [e["id"] for e in await events_of(caller)]

        # enabled again, it is delivered: its event was kept for it
        await caller.http.patch(f"/webhook_endpoints/{waiting['id']}", json={"status": "ENABLED"})
        await deliver(caller)
        assert [r.webhook_id for r in later.delivered()] == [first["id"]]

        # every server's sweep loop runs the clean-up: at a clock two days on, a retention of
        # one day takes the last delivery and its event
        loop = asyncio.get_running_loop().create_task(
            run_periodically(db, FixedClock(datetime.now(UTC) + timedelta(days=2)), 0.05, 1)
        )
        try:
            for _ in range(200):
                listed = [e["id"] for e in await events_of(caller)]
                if not await log_of(caller, waiting) and first["id"] not in listed:
                    break
                await asyncio.sleep(0.05)
        finally:
            loop.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await loop
        assert await log_of(caller, waiting) == []
        # (the sweep at that clock may record events of its own, recent ones)
        assert first["id"] not in [e["id"] for e in await events_of(caller)]


async def test_the_retention_setting(db: Database, monkeypatch: pytest.MonkeyPatch) -> None:
    assert Settings().webhooks.retention_days == 30
    monkeypatch.setenv("DRAWDOWN_WEBHOOK_RETENTION_DAYS", "90")
    assert Settings.from_env().webhooks.retention_days == 90
    monkeypatch.setenv("DRAWDOWN_WEBHOOK_RETENTION_DAYS", "0")
    with pytest.raises(SettingsError, match="DRAWDOWN_WEBHOOK_RETENTION_DAYS must be at least 1"):
        Settings.from_env()
    with pytest.raises(ValueError, match="at least 1 day"):
        await purge_outbox(db, NOW, 0)


def test_the_purge_webhooks_command(database_url: str) -> None:
    env = {**os.environ, "DRAWDOWN_DATABASE_URL": database_url}
    purged = subprocess.run(
        [DRAWDOWN, "purge-webhooks"], env=env, capture_output=True, text=True, check=True
    )
    assert purged.stdout.startswith("purged ")
    assert "webhook deliveries and" in purged.stdout
    refused = subprocess.run(
        [DRAWDOWN, "purge-webhooks"],
        env={**env, "DRAWDOWN_WEBHOOK_RETENTION_DAYS": "x"},
        capture_output=True,
        text=True,
    )
    assert refused.returncode == 1
    assert "DRAWDOWN_WEBHOOK_RETENTION_DAYS must be a number" in refused.stderr


async def _old_event_and_an_endpoint(
    db: Database, caller: Caller
) -> tuple[int, dict[str, Any], Any]:
    """An event no delivery refers to (recorded before any endpoint was), then an endpoint a
    replay could give it to: the organization's seq, the endpoint and its row."""
    await make_account(caller.http)
    await grant(caller.http, amount=1)
    with receiver() as hooks:
        endpoint = await register(caller, hooks)
    async with db.read() as conn:
        org_seq = (
            await conn.execute(
                select(webhook_endpoints.c.org_seq).where(webhook_endpoints.c.id == endpoint["id"])
            )
        ).scalar_one()
        row = await webhook_store.find_endpoint(conn, org_seq, endpoint["id"])
    return org_seq, endpoint, row


@pytest.mark.skipif(ENGINE != "postgresql", reason="SQLite's write lock already serializes the two")
async def test_a_replay_waits_for_a_clean_up_deleting_its_events_and_skips_them(
    db: Database, caller: Caller
) -> None:
    """The clean-up has deleted an old event, not yet committed, when a replay since before it
    comes: the replay must not give a delivery to the event going away (a foreign key error, a
    500, before) but wait, then find it gone."""
    org_seq, endpoint, _ = await _old_event_and_an_endpoint(db, caller)
    recorded = len(await events_of(caller))
    later_on = datetime.now(UTC) + timedelta(days=31)
    async with db.engine.connect() as cleaning:
        await cleaning.begin()
        deleted = await outbox_retention.purge_events(cleaning, later_on, 100, org_seq=org_seq)
        assert deleted == recorded > 0
        replaying = asyncio.create_task(
            caller.http.post(
                f"/webhook_endpoints/{endpoint['id']}/replay",
                json={"since": "2020-01-01T00:00:00Z"},
            )
        )
        await asyncio.sleep(0.5)
        assert not replaying.done()  # it waits for the clean-up
        await cleaning.commit()
    replayed = await replaying
    assert replayed.status_code == 200, replayed.text
    assert replayed.json() == {"replayed": 0, "next": None}
    assert await events_of(caller) == []


@pytest.mark.skipif(ENGINE != "postgresql", reason="SQLite's write lock already serializes the two")
async def test_a_clean_up_waits_for_a_replay_giving_its_events_deliveries_and_keeps_them(
    db: Database, caller: Caller
) -> None:
    """A replay has given an old event a delivery, not yet committed, when the clean-up comes:
    it must wait and keep the event (a foreign key error stopped the clean-up before)."""
    org_seq, _, row = await _old_event_and_an_endpoint(db, caller)
    recorded = len(await events_of(caller))
    later_on = datetime.now(UTC) + timedelta(days=31)
    async with db.engine.connect() as replaying:
        await replaying.begin()
        since = datetime(2020, 1, 1, tzinfo=UTC)
        given = await webhook_store.replay(replaying, row, since, 100, datetime.now(UTC))
        assert given == (recorded, None) and recorded > 0

        async def clean(conn: AsyncConnection) -> int:
            return await outbox_retention.purge_events(conn, later_on, 100, org_seq=org_seq)

        cleaning = asyncio.create_task(db.transact(clean))
        await asyncio.sleep(0.5)
        assert not cleaning.done()  # it waits for the replay
        await replaying.commit()
    assert await cleaning == 0
    assert len(await events_of(caller)) == recorded
