"""kill -9 during ingest and apply: every acknowledged event is counted exactly once.

A real `drawdown serve` (2 worker processes on PostgreSQL, 1 on SQLite, every one of them
applying) takes concurrent /ingestBatch and /ingest calls from several senders and is killed
with SIGKILL (its whole process group) at random moments, then restarted on the same port.
A request that got no answer, or a 5xx, is sent again unchanged until it is acknowledged (202).
When every sender is done, everything is sent once more (all duplicates now), and the test
waits until nothing is pending.

Events carry random timestamps, so they arrive out of order. "Rich" accounts hold one credit
that pays everything, so each event's allocations do not depend on the order they were
applied in and the reference model (tests/usage_reference.py) predicts every figure: each
event's cost and allocation, the per-meter totals, each credit and the balance. A "short"
account's credit runs out mid-way: there the split between meters depends on the order, but
the sums do not (paid in total = the credit, uncovered = cost - credit). `verify` must find
the books sound. KILL9_CYCLES (default 5) sets how many kills."""

from __future__ import annotations

import asyncio
import os
import random
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import httpx
import pytest

from drawdown.clock import FixedClock
from drawdown.store.database import Database
from tests.conftest import ENGINE
from tests.helpers import decimal_json
from tests.live_server import create_key
from tests.oracle import books_problems
from tests.test_kill9 import Figures, Server, Up, send
from tests.usage_http import (
    all_pages,
    compare_account,
    create_meter,
    event_body,
    grant,
    make_account,
    usage,
    wait_applied,
)
from tests.usage_reference import (
    ACCEPTED,
    COUNT,
    DUPLICATE,
    SUM,
    Event,
    Meter,
    Organization,
    Rate,
)

CYCLES = int(os.environ.get("KILL9_CYCLES", "5"))
RICH = ["rich-0", "rich-1", "rich-2"]
SHORT = "short"
SENDERS = 4
SHORT_CREDIT = Decimal("25.5")


@pytest.fixture
def server(database_url: str) -> Iterator[Server]:
    running = Server(database_url)
    try:
        yield running
    finally:
        running.stop()


class Sender:
    """Sends its own events in batches of 1 to 40 (a batch of one as /ingest), each request
    again until it is acknowledged."""

    def __init__(self, index: int, seed: int, start: datetime) -> None:
        self.index = index
        self.random = random.Random(seed)
        self.start = start
        self.sent: list[Event] = []
        self.count = 0

    def make_event(self) -> Event:
        self.count += 1
        account = self.random.choice([*RICH, SHORT])
        tokens = Decimal(self.random.randint(0, 10**6)) / 1000
        return Event(
            id=f"s{self.index}-{self.count:06d}",
            schema="llm",
            account_id=account,
            timestamp=self.start - timedelta(seconds=self.random.randint(1, 6 * 3600)),
            attributes=(("tokens", tokens, "tokens"),),
            dimensions=(("model", self.random.choice(["large", "small"])),),
        )

    async def run(
        self, http: httpx.AsyncClient, up: Up, figures: Figures, stop: asyncio.Event
    ) -> None:
        while not stop.is_set():
            batch = [self.make_event() for _ in range(self.random.randint(1, 40))]
            await send_events(http, up, figures, batch)
            self.sent += batch


async def send_events(
    http: httpx.AsyncClient, up: Up, figures: Figures, batch: list[Event], fresh: bool = True
) -> dict[str, Any]:
    """Send until acknowledged; a retry may find some or all of the events stored already,
    never refused. Events never sent before (`fresh`) are new on the first attempt."""
    if len(batch) == 1:
        path, body = "/ingest", {"event": event_body(batch[0])}
    else:
        path, body = "/ingestBatch", {"events": [event_body(e) for e in batch]}

    def acknowledged(response: httpx.Response, attempt: int) -> bool:
        assert response.status_code == 202, (path, attempt, response.text)
        details = response.json()["details"]
        assert details["accepted"] == len(batch), details
        if attempt == 1 and fresh:
            assert details["duplicates"] == 0, details
        return True

    response = await send(http, up, figures, path, body, acknowledged)
    return dict(response.json()["details"])


async def _under_load(figures: Figures, acks: int, extra: float) -> None:
    target = figures.acknowledged + acks
    deadline = time.monotonic() + 10
    while figures.acknowledged < target and time.monotonic() < deadline:
        await asyncio.sleep(0.005)
    await asyncio.sleep(extra)


async def test_kill9_during_ingest_and_apply_counts_each_event_once(
    database_url: str, db: Database, server: Server
) -> None:
    org_name = f"usage-kill9-{uuid.uuid4().hex}"
    key = create_key(database_url, org_name)
    seed = int(os.environ.get("KILL9_SEED", str(random.randrange(10**6))))
    chaos = random.Random(seed)
    figures = Figures()
    up, stop = Up(), asyncio.Event()
    start = datetime.now(UTC)
    org = Organization(today=start.date())
    senders = [Sender(i, seed + i, start) for i in range(SENDERS)]
    server.start()
    headers = {"Authorization": f"Bearer {key}", "Content-Type": "application/json"}
    async with httpx.AsyncClient(base_url=server.base_url, headers=headers, timeout=60) as http:
        for account_id in [*RICH, SHORT]:
            await make_account(http, org, account_id)
        # two meters on every event (one filtered), priced exactly and with rounding
        rate = Rate(Decimal("0.002"), Decimal(1))
        await create_meter(
            http, org, Meter("um.tokens", "Tokens", "llm", SUM, "tokens", (), [rate])
        )
        large = Meter(
            "um.large",
            "Large calls",
            "llm",
            COUNT,
            None,
            (("dimensions.model", "large"),),
            [Rate(Decimal(1), Decimal(3))],
        )
        await create_meter(http, org, large)
        yesterday = start.date() - timedelta(days=1)
        for account_id in RICH:
            await grant(http, org, account_id, Decimal(10**9), 1, yesterday, None, None)
        await grant(http, org, SHORT, SHORT_CREDIT, 1, yesterday, None, None)

        up.event.set()
        tasks = [asyncio.create_task(s.run(http, up, figures, stop)) for s in senders]
        for _ in range(CYCLES):
            await _under_load(figures, chaos.randint(3, 30), chaos.uniform(0, 0.05))
            up.event.clear()  # new requests wait; those in flight die with the server
            server.kill()
            await asyncio.to_thread(server.start)
            up.event.set()
        await asyncio.sleep(0.3)
        stop.set()
        await asyncio.gather(*tasks)

        # everything again: each batch all duplicates now
        everything = [e for s in senders for e in s.sent]
        for n in range(0, len(everything), 500):
            chunk = everything[n : n + 500]
            details = await send_events(http, up, figures, chunk, fresh=False)
            assert details["duplicates"] == len(chunk), details

        outcomes = [org.ingest(e, datetime.now(UTC)).kind for e in everything]
        assert set(outcomes) == {ACCEPTED}
        await wait_applied(http, [*RICH, SHORT], timeout_s=180)
        org.apply_pending()
        for account_id in RICH:
            await compare_account(http, org, account_id)
        await _check_short(http, org)
        assert [org.ingest(e, datetime.now(UTC)).kind for e in everything[:5]] == [DUPLICATE] * min(
            5, len(everything)
        )
    server.stop()

    assert await books_problems(db, FixedClock(datetime.now(UTC)), org_name) == []
    assert figures.server_errors == []
    print(
        f"\nusage kill9 {ENGINE} seed={seed}: cycles={CYCLES} events={len(everything)} "
        f"acknowledged={figures.acknowledged} retries={figures.retries} "
        f"unanswered={figures.unanswered}"
    )


async def _check_short(http: httpx.AsyncClient, org: Organization) -> None:
    """The short account: each event counted once with its exact cost; what was paid in all
    is the credit, and the rest is uncovered, whatever the order the events were applied in."""
    mine = [s for s in org.events.values() if s.event.account_id == SHORT]
    body = await usage(http, SHORT)
    assert body["pending"] == 0
    shown = {m["meterId"]: m for m in body["meters"]}
    expected = {m["meterId"]: m for m in org.usage_view(SHORT)["meters"]}  # type: ignore[attr-defined]
    assert set(shown) == set(expected)
    for meter_id, totals in expected.items():
        for key in ("quantity", "cost", "events"):
            assert shown[meter_id][key] == totals[key], (meter_id, key)
        assert shown[meter_id]["cost"] == (
            shown[meter_id]["paidByCredits"] + shown[meter_id]["uncovered"]
        )
    cost = sum((m["cost"] for m in shown.values()), Decimal(0))
    paid = sum((m["paidByCredits"] for m in shown.values()), Decimal(0))
    assert paid == min(SHORT_CREDIT, cost)
    listed = await all_pages(http, f"/accounts/{SHORT}/usage/events")
    assert sorted(e["id"] for e in listed) == sorted(s.event.id for s in mine if s.event.id)
    for stored in mine:
        response = await http.get(f"/usage/events/{stored.event.id}")
        event = decimal_json(response)
        assert event["status"] == stored.status
        for got, charge in zip(event["meters"], stored.charges, strict=True):
            assert (got["meterId"], got["cost"]) == (
                charge.meter_id,
                Decimal(charge.view()["cost"]),
            )  # type: ignore[arg-type]
            paid_here = sum((a["amount"] for a in got["allocations"]), Decimal(0))
            assert paid_here + got["uncovered"] == got["cost"]
    balance = decimal_json(await http.get(f"/accounts/{SHORT}/credit_balance"))
    assert balance["availableBalance"] == SHORT_CREDIT - paid
