"""The clean-up (docs/usage.md, "Retention and clean-up"): applied events past the retention
and a day are deleted, pending and younger ones kept, the running totals and verify whole, a
resend of a purged event still refused; the retention never below 45 days; the commands."""

import os
import subprocess
from datetime import timedelta
from typing import Any

import httpx
import pytest

from drawdown.clock import FixedClock
from drawdown.config import Settings, SettingsError
from drawdown.jobs.purge import purge_events
from drawdown.store.database import Database
from tests.helpers import decimal_json, grant, make_account
from tests.live_server import DRAWDOWN
from tests.oracle import assert_books_balance


def event(event_id: str, timestamp: str, schema: str = "llm_call") -> dict[str, Any]:
    return {
        "schemaName": schema,
        "id": event_id,
        "timestamp": timestamp,
        "accountId": "acc-1",
        "attributes": [{"name": "tokens", "value": "3"}],
    }


async def test_old_applied_events_go_and_what_they_drew_stays_counted(
    client: httpx.AsyncClient, db: Database, clock: FixedClock, org_name: str
) -> None:
    await make_account(client)
    meter = {
        "id": "um.tokens",
        "name": "Tokens",
        "eventSchemaName": "llm_call",
        "aggregation": "SUM",
        "attribute": "tokens",
        "creditRate": {"credits": 1, "perQuantity": 1},
    }
    assert (await client.post("/usage_meters", json=meter)).status_code == 201
    await grant(client, amount=7)
    old, young = "2026-10-11T00:00:00Z", "2026-11-20T00:00:00Z"  # 44 and 4 days before now
    sent = await client.post(
        "/ingestBatch",
        json={"events": [event("old", old), event("old-2", old, "other"), event("young", young)]},
    )
    assert sent.status_code == 202, sent.text
    await client._transport.app.state.applier.drain()  # type: ignore[attr-defined]
    before = decimal_json(await client.get("/accounts/acc-1/usage"))

    clock.advance(timedelta(days=1))  # 45.5 days after "old": within retention and the margin
    assert await purge_events(db, clock, 45) == 0
    clock.advance(timedelta(days=1, seconds=1))  # past 45 days and the day of margin
    pending = await client.post("/ingest", json={"event": event("late", "2026-11-26T00:00:00Z")})
    assert pending.status_code == 202
    assert await purge_events(db, clock, 45, per_transaction=1) >= 2
    assert (await client.get("/usage/events/old")).status_code == 404
    assert (await client.get("/usage/events/old-2")).status_code == 404
    assert (await client.get("/usage/events/young")).json()["status"] == "APPLIED"
    assert (await client.get("/usage/events/late")).json()["status"] == "PENDING"
    assert decimal_json(await client.get("/accounts/acc-1/usage"))["meters"] == before["meters"]
    await assert_books_balance(db, clock, org_name)

    # a resend of a purged event is older than 45 days: refused, never counted again
    resent = await client.post("/ingest", json={"event": event("old", old)})
    assert resent.status_code == 400 and "45 days" in resent.json()["message"]

    await client._transport.app.state.applier.drain()  # type: ignore[attr-defined]
    await assert_books_balance(db, clock, org_name)


async def test_the_retention_is_never_below_45_days(
    db: Database, clock: FixedClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    with pytest.raises(ValueError, match="45 days"):
        await purge_events(db, clock, 44)
    monkeypatch.setenv("DRAWDOWN_EVENT_RETENTION_DAYS", "30")
    with pytest.raises(SettingsError, match="DRAWDOWN_EVENT_RETENTION_DAYS must be at least 45"):
        Settings.from_env()


def test_the_apply_and_purge_commands(database_url: str) -> None:
    env = {**os.environ, "DRAWDOWN_DATABASE_URL": database_url}
    applied = subprocess.run(
        [DRAWDOWN, "apply-usage", "--once"], env=env, capture_output=True, text=True, check=True
    )
    assert applied.stdout.startswith("applied ") and "usage events" in applied.stdout
    purged = subprocess.run(
        [DRAWDOWN, "purge-events"], env=env, capture_output=True, text=True, check=True
    )
    assert purged.stdout.startswith("purged ")
    refused = subprocess.run(
        [DRAWDOWN, "purge-events"],
        env={**env, "DRAWDOWN_EVENT_RETENTION_DAYS": "10"},
        capture_output=True,
        text=True,
    )
    assert refused.returncode == 1
    assert "DRAWDOWN_EVENT_RETENTION_DAYS must be at least 45" in refused.stderr
