"""Days and clocks (credits.md): two servers on one database, one clock a couple of seconds
behind across UTC midnight. The one behind writes after the other has brought the account to
the new day; it must compute as of the new day, never the old one."""

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import httpx
import pytest

from drawdown.api.app import create_app
from drawdown.clock import FixedClock
from drawdown.store.database import Database
from tests.helpers import apply, decimal_json, details, grant, lines, make_account
from tests.oracle import assert_books_balance

OLD_DAY = "2026-11-24"
NEW_DAY = "2026-11-25"
BEHIND = datetime(2026, 11, 24, 23, 59, 59, tzinfo=UTC)
AHEAD = datetime(2026, 11, 25, 0, 0, 1, tzinfo=UTC)


def _client(db: Database, clock: Any, api_key: str) -> httpx.AsyncClient:
    return httpx.AsyncClient(
        transport=httpx.ASGITransport(app=create_app(db, clock)),
        base_url="http://drawdown.test",
        headers={"Authorization": f"Bearer {api_key}"},
    )


@pytest.fixture
async def servers(
    db: Database, api_key: str
) -> AsyncIterator[tuple[httpx.AsyncClient, httpx.AsyncClient]]:
    """(ahead, behind): two apps on one database, with clocks two seconds apart."""
    async with (
        _client(db, FixedClock(AHEAD), api_key) as ahead,
        _client(db, FixedClock(BEHIND), api_key) as behind,
    ):
        yield ahead, behind


class Balances:
    """Reads the balance and checks `lastUpdatedAt` never goes backwards between reads."""

    def __init__(self, client: httpx.AsyncClient) -> None:
        self.client = client
        self.last_updated = ""

    async def read(self) -> dict[str, Any]:
        response = await self.client.get("/accounts/acc-1/credit_balance")
        assert response.status_code == 200, response.text
        balance: dict[str, Any] = decimal_json(response)
        stamp = balance["lastUpdatedAt"]
        assert stamp >= self.last_updated, f"lastUpdatedAt went back to {stamp}"
        self.last_updated = stamp
        return balance


def _amounts(balance: dict[str, Any]) -> tuple[Decimal, ...]:
    keys = ("activeCredits", "availableBalance", "runningBalance", "inapplicableCredits")
    return tuple(balance[key] for key in keys)


async def _both_clocks_verify(db: Database, org_name: str) -> None:
    await assert_books_balance(db, FixedClock(BEHIND), org_name)
    await assert_books_balance(db, FixedClock(AHEAD), org_name)


async def test_void_behind_midnight_after_the_account_moved_to_the_new_day(
    servers: tuple[httpx.AsyncClient, httpx.AsyncClient], db: Database, org_name: str
) -> None:
    ahead, behind = servers
    balances = Balances(ahead)
    await make_account(behind)
    credit = await grant(behind, amount=50, effectiveFrom=NEW_DAY)
    assert _amounts(await Balances(behind).read()) == (50, 0, 0, 50)
    # The server ahead reads first: the account is brought to the new day.
    assert _amounts(await balances.read()) == (50, 50, 50, 0)
    # The reproduction: 500 on PostgreSQL (inapplicable = -50 broke the CHECK), stored -50 on
    # SQLite.
    response = await behind.post(f"/credits/{credit['id']}/void")
    assert response.status_code == 200, response.text
    assert response.json()["status"] == "VOIDED"
    assert _amounts(await balances.read()) == (0, 0, 0, 0)
    assert _amounts(await Balances(behind).read()) == (0, 0, 0, 0)
    assert lines(await details(ahead, credit["id"])) == [("CREDITED", 50), ("VOIDED", 50)]
    await _both_clocks_verify(db, org_name)


async def test_hold_grant_and_debit_behind_midnight_compute_as_of_the_new_day(
    servers: tuple[httpx.AsyncClient, httpx.AsyncClient], db: Database, org_name: str
) -> None:
    ahead, behind = servers
    balances = Balances(ahead)
    await make_account(behind)
    starts_new_day = await grant(behind, amount=100, effectiveFrom=NEW_DAY)
    ends_old_day = await grant(behind, amount=7, effectiveFrom=OLD_DAY, effectiveUntil=OLD_DAY)
    assert _amounts(await Balances(behind).read()) == (107, 7, 7, 100)
    assert _amounts(await balances.read()) == (100, 100, 100, 0)  # 7 expired at midnight

    held = await apply(behind, "inv-hold", [30])
    assert held.status_code == 200, held.text
    assert held.json()["asOf"] == NEW_DAY
    assert held.json()["appliedAmount"] == 30
    assert _amounts(await balances.read()) == (100, 100, 70, 0)

    # A grant from the server behind, for the new day: applicable on the balance's day.
    granted = await grant(behind, amount=20, effectiveFrom=NEW_DAY)
    assert _amounts(await balances.read()) == (120, 120, 90, 0)

    debited = await apply(behind, "inv-debit", [10], mode="DEBIT")
    assert debited.status_code == 200, debited.text
    assert debited.json()["appliedAmount"] == 10
    assert _amounts(await balances.read()) == (120, 110, 80, 0)
    captured = await behind.post("/accounts/acc-1/credit_applications/inv-hold/capture")
    assert captured.status_code == 200, captured.text
    assert _amounts(await balances.read()) == (120, 80, 80, 0)

    assert (await details(ahead, ends_old_day["id"]))["status"] == "EXPIRED"
    assert (await details(behind, starts_new_day["id"]))["consumedAmount"] == 40
    assert (await details(behind, granted["id"]))["status"] == "ACTIVE"
    assert _amounts(await Balances(behind).read()) == (120, 80, 80, 0)
    await _both_clocks_verify(db, org_name)


async def test_many_writes_from_both_servers_keep_the_balance_exact(
    servers: tuple[httpx.AsyncClient, httpx.AsyncClient], db: Database, org_name: str
) -> None:
    """Alternating writers: every second write comes from the server behind."""
    ahead, behind = servers
    balances = Balances(ahead)
    await make_account(behind)
    voided = Decimal(0)
    ids = []
    for index in range(6):
        writer = behind if index % 2 else ahead
        ids.append((await grant(writer, amount=index + 1, effectiveFrom=NEW_DAY))["id"])
    for index, credit_id in enumerate(ids[:3]):
        writer = ahead if index % 2 else behind
        response = await writer.post(f"/credits/{credit_id}/void")
        assert response.status_code == 200, response.text
        voided += index + 1
    total = sum(range(1, 7)) - voided
    assert _amounts(await balances.read()) == (total, total, total, 0)
    await _both_clocks_verify(db, org_name)


class SteppingClock:
    """Reads as the old day first (when the request arrives), then as the new day."""

    def __init__(self) -> None:
        self.reads = 0

    def now(self) -> datetime:
        self.reads += 1
        return BEHIND if self.reads == 1 else AHEAD


async def test_a_write_judges_today_by_the_clock_it_reads_under_the_lock(
    db: Database, api_key: str, org_name: str
) -> None:
    async with _client(db, FixedClock(BEHIND), api_key) as setup:
        await make_account(setup)
        await grant(setup, amount=100, effectiveFrom=NEW_DAY)
    clock = SteppingClock()
    async with _client(db, clock, api_key) as late:
        response = await apply(late, "inv-1", [25])
        assert response.status_code == 200, response.text
        assert clock.reads >= 2, "the write never read the clock again"
        assert response.json()["asOf"] == NEW_DAY
        assert response.json()["appliedAmount"] == 25
    async with _client(db, FixedClock(AHEAD + timedelta(hours=1)), api_key) as reader:
        assert _amounts(await Balances(reader).read()) == (100, 100, 75, 0)
    await _both_clocks_verify(db, org_name)


async def test_two_servers_two_seconds_apart_under_concurrent_writes(
    servers: tuple[httpx.AsyncClient, httpx.AsyncClient], db: Database, org_name: str
) -> None:
    """Grants, voids, holds and reads from both servers at once, across midnight."""
    ahead, behind = servers
    await make_account(behind)
    old = [await grant(behind, amount=10, effectiveFrom=NEW_DAY) for _ in range(8)]

    voided = {credit["id"] for credit in old[:4]}
    held = Decimal(0)  # on credits still active: what the balance counts

    async def ok(request: Any) -> None:
        nonlocal held
        response = await request
        assert response.status_code == 200, response.text
        body = decimal_json(response)
        # The server behind holds on the old day (nothing in effect yet) until some write has
        # brought the account to the new day; after that, always on the new day.
        for line in body.get("lineItems", []):
            for allocation in line["allocations"]:
                if allocation["creditId"] not in voided:
                    held += allocation["amount"]

    calls = []
    for index, credit in enumerate(old[:4]):
        writer = behind if index % 2 else ahead
        calls.append(ok(writer.post(f"/credits/{credit['id']}/void")))
    for index in range(6):
        writer = ahead if index % 2 else behind
        calls.append(ok(apply(writer, f"inv-{index}", [1])))
        calls.append(ok(writer.post("/credits", json=_grant_body(index + 1))))
        calls.append(ok(writer.get("/accounts/acc-1/credit_balance")))
    await asyncio.gather(*calls)

    active = 8 * 10 - 4 * 10 + sum(range(1, 7))
    assert _amounts(await Balances(ahead).read()) == (active, active, active - held, 0)
    assert _amounts(await Balances(behind).read()) == (active, active, active - held, 0)
    await _both_clocks_verify(db, org_name)


def _grant_body(amount: int) -> dict[str, Any]:
    return {
        "accountId": "acc-1",
        "purpose": "PREPAID_CREDIT",
        "effectiveFrom": NEW_DAY,
        "creditAmount": amount,
        "priority": 1,
    }


async def test_same_day_writes_from_a_clock_behind_keep_last_updated_at(
    db: Database, api_key: str
) -> None:
    """On one day (PostgreSQL's grant fast path included) the server behind never moves
    `lastUpdatedAt` back."""
    noon = datetime(2026, 11, 24, 12, tzinfo=UTC)
    async with (
        _client(db, FixedClock(noon + timedelta(seconds=2)), api_key) as ahead,
        _client(db, FixedClock(noon), api_key) as behind,
    ):
        await make_account(behind)
        await grant(ahead, amount=5)
        balances = Balances(ahead)
        assert (await balances.read())["lastUpdatedAt"] == "2026-11-24T12:00:02Z"
        await grant(behind, amount=7)
        assert _amounts(await balances.read()) == (12, 12, 12, 0)
        assert balances.last_updated == "2026-11-24T12:00:02Z"
