"""kill -9 under mixed writes: nothing acknowledged is lost, and retries apply exactly once.

A real `drawdown serve` (2 worker processes on PostgreSQL, 1 on SQLite) takes concurrent
grants, DEBITs, HOLDs, captures, releases and voids, and is killed with SIGKILL (its whole
process group) at random moments, then restarted on the same port. Every request that got no
answer, or a 5xx, is retried with the same idempotency key or invoice id until it is
acknowledged. Each writer owns one account, so its account's history is the writer's own
sequence and the reference model can replay it exactly; two more writers share one account,
grants and debits racing on its lock, where the sums are what the model checks.

At the end: every acknowledged write is in the books with the acknowledged amounts, one credit
per idempotency key and one application per invoice, each account equals the reference model,
and `verify` finds the books sound. KILL9_CYCLES (default 5) sets how many kills."""

import asyncio
import os
import random
import signal
import subprocess
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any

import httpx
import pytest

from drawdown.clock import FixedClock
from drawdown.store.database import Database
from tests.conftest import ENGINE
from tests.helpers import credit_as_seen, decimal_json
from tests.live_server import DRAWDOWN, create_key, free_port, server_env
from tests.oracle import books_problems
from tests.reference_model import Account, Item, units
from tests.usage_http import all_pages, exact_json

CYCLES = int(os.environ.get("KILL9_CYCLES", "5"))
WORKERS = 2 if ENGINE == "postgresql" else 1
OWN_WRITERS = 6
SHARED_WRITERS = 2
SHARED_BIG = Decimal(10**9)
FROM = "2026-01-01"


@dataclass
class Figures:
    acknowledged: int = 0
    retries: int = 0
    unanswered: int = 0
    server_errors: list[str] = field(default_factory=list)


class Server:
    """`drawdown serve` in its own process group, so SIGKILL reaches every worker."""

    def __init__(self, database_url: str) -> None:
        self.database_url = database_url
        self.port = free_port()
        self.base_url = f"http://127.0.0.1:{self.port}"
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        args = [DRAWDOWN, "serve", "--host", "127.0.0.1", "--port", str(self.port)]
        self.process = subprocess.Popen(
            [*args, "--workers", str(WORKERS)],
            env=server_env(self.database_url),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        deadline = time.monotonic() + 30
        while True:
            assert self.process.poll() is None, "drawdown serve exited early"
            try:
                if httpx.get(f"{self.base_url}/health", timeout=1).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            assert time.monotonic() < deadline, "drawdown serve did not come up in 30 s"
            time.sleep(0.05)

    def kill(self) -> None:
        assert self.process is not None
        os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait()

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.kill()


class Up:
    """Writers wait here while the server is down."""

    def __init__(self) -> None:
        self.event = asyncio.Event()

    async def wait(self) -> None:
        await self.event.wait()


async def send(
    http: httpx.AsyncClient,
    up: Up,
    figures: Figures,
    path: str,
    body: dict[str, Any] | None,
    acknowledged: Any,
) -> httpx.Response:
    """Send until the answer is an acknowledgement (`acknowledged(response, attempt)`)."""
    attempt = 0
    while True:
        await up.wait()
        attempt += 1
        if attempt > 1:
            figures.retries += 1
        try:
            response = await http.post(path, content=exact_json(body) if body else None)
        except httpx.TransportError:
            figures.unanswered += 1
            await asyncio.sleep(0.01)
            continue
        if response.status_code >= 500:
            if response.status_code != 503:
                figures.server_errors.append(f"{path}: {response.status_code} {response.text}")
            await asyncio.sleep(0.01)
            continue
        assert acknowledged(response, attempt), (path, body, response.status_code, response.text)
        figures.acknowledged += 1
        return response


def ok(response: httpx.Response, _attempt: int) -> bool:
    return response.status_code == 200


class OwnWriter:
    """One account's mixed writes, in an order the reference model replays exactly."""

    def __init__(self, org: str, index: int, seed: int) -> None:
        self.account_id = f"own-{index}"
        # keys are per organization, so the org need not be in them (they must fit in 50)
        self.key_prefix = f"own-{index}"
        self.random = random.Random(seed)
        self.model = Account(today=datetime.now(UTC).date())
        self.holds: list[str] = []
        self.grants = 0
        self.invoices = 0

    async def run(self, http: httpx.AsyncClient, up: Up, figures: Figures, stop: Any) -> None:
        while not stop.is_set():
            kind = self.random.choice(["grant", "grant", "DEBIT", "HOLD", "settle", "void"])
            if kind == "grant" or not self.model.credits:
                await self._grant(http, up, figures)
            elif kind in ("DEBIT", "HOLD"):
                await self._apply(http, up, figures, kind)
            elif kind == "settle" and self.holds:
                await self._settle(http, up, figures)
            elif kind == "void":
                await self._void(http, up, figures)

    async def _grant(self, http: httpx.AsyncClient, up: Up, figures: Figures) -> None:
        self.grants += 1
        value = Decimal(self.random.randint(1, 10**6)) / 100
        priority = self.grants  # distinct priorities: the drawdown order is the grant order
        body = {
            "accountId": self.account_id,
            "purpose": "PREPAID_CREDIT",
            "effectiveFrom": FROM,
            "creditAmount": value,
            "priority": priority,
            "idempotencyKey": f"{self.key_prefix}-grant-{self.grants}",
        }
        response = await send(http, up, figures, "/credits", body, ok)
        credit = decimal_json(response)
        assert credit["creditAmount"] == value
        self.model.grant(
            credit["id"],
            units(value),
            priority,
            date.fromisoformat(FROM),
            None,
            None,
            datetime.now(UTC),
        )

    async def _apply(self, http: httpx.AsyncClient, up: Up, figures: Figures, mode: str) -> None:
        self.invoices += 1
        invoice = f"inv-{self.invoices}"
        value = Decimal(self.random.randint(1, 4 * 10**5)) / 100
        body = {
            "invoiceId": invoice,
            "mode": mode,
            "lineItems": [
                {"entityId": "um.api", "entityType": "USAGE_METER_RATE_CARD", "amount": value}
            ],
        }
        path = f"/accounts/{self.account_id}/credit_applications"
        response = await send(http, up, figures, path, body, ok)
        items = (Item("um.api", "USAGE_METER_RATE_CARD", units(value)),)
        expected = self.model.apply(invoice, mode, None, items)
        assert expected.application is not None
        assert _application_view(response, expected.application.view()) == (
            expected.application.view()
        )
        if mode == "HOLD":
            self.holds.append(invoice)

    async def _settle(self, http: httpx.AsyncClient, up: Up, figures: Figures) -> None:
        invoice = self.holds.pop(self.random.randrange(len(self.holds)))
        action = self.random.choice(["capture", "release"])
        path = f"/accounts/{self.account_id}/credit_applications/{invoice}/{action}"
        response = await send(http, up, figures, path, None, ok)
        answer = self.model.capture(invoice) if action == "capture" else self.model.release(invoice)
        assert answer.application is not None
        view = answer.application.view()
        assert _application_view(response, view) == view

    async def _void(self, http: httpx.AsyncClient, up: Up, figures: Figures) -> None:
        active = [cid for cid, c in self.model.credits.items() if c.status == "ACTIVE"]
        if not active:
            return
        credit_id = self.random.choice(active)

        def voided(response: httpx.Response, attempt: int) -> bool:
            # A retry of a void that was applied before the kill finds it voided already.
            already = response.status_code == 400 and "already voided" in response.text
            return response.status_code == 200 or (attempt > 1 and already)

        await send(http, up, figures, f"/credits/{credit_id}/void", None, voided)
        assert self.model.void(credit_id).status == 200


class SharedWriter:
    """Grants and debits racing with another writer on one account. The account's big credit
    (priority 0) pays every debit, so the sums do not depend on the order they commit in."""

    def __init__(self, org: str, index: int, seed: int) -> None:
        self.key_prefix = f"shared-{index}"
        self.index = index
        self.random = random.Random(seed)
        self.granted: dict[str, Decimal] = {}  # credit id -> amount
        self.debited: dict[str, Decimal] = {}  # invoice -> amount
        self.steps = 0

    async def run(
        self, http: httpx.AsyncClient, up: Up, figures: Figures, stop: Any, big_id: str
    ) -> None:
        while not stop.is_set():
            self.steps += 1
            value = Decimal(self.random.randint(1, 10**4)) / 100
            if self.random.random() < 0.5:
                body: dict[str, Any] = {
                    "accountId": "shared",
                    "purpose": "PREPAID_CREDIT",
                    "effectiveFrom": FROM,
                    "creditAmount": value,
                    "priority": 5,
                    "idempotencyKey": f"{self.key_prefix}-{self.steps}",
                }
                credit = decimal_json(await send(http, up, figures, "/credits", body, ok))
                assert credit["creditAmount"] == value
                self.granted[credit["id"]] = value
            else:
                invoice = f"inv-{self.index}-{self.steps}"
                body = {
                    "invoiceId": invoice,
                    "mode": "DEBIT",
                    "lineItems": [
                        {"entityId": "e", "entityType": "FIXED_FEE_RATE_CARD", "amount": value}
                    ],
                }
                path = "/accounts/shared/credit_applications"
                answer = decimal_json(await send(http, up, figures, path, body, ok))
                assert answer["status"] == "DEBITED"
                allocations = answer["lineItems"][0]["allocations"]
                assert allocations == [{"creditId": big_id, "amount": value}]
                self.debited[invoice] = value


async def _under_load(figures: Figures, acks: int, extra: float) -> None:
    """Wait until the restarted server has acknowledged `acks` more writes (at most 10 s),
    then a moment more, so each kill lands in the middle of writes."""
    target = figures.acknowledged + acks
    deadline = time.monotonic() + 10
    while figures.acknowledged < target and time.monotonic() < deadline:
        await asyncio.sleep(0.005)
    await asyncio.sleep(extra)


def _application_view(response: httpx.Response, expected: dict[str, Any]) -> dict[str, Any]:
    body = decimal_json(response)
    got = {key: body[key] for key in expected if key != "lineItems"}
    got["lineItems"] = [
        {key: item[key] for key in expected["lineItems"][0]} for item in body["lineItems"]
    ]
    return got


@pytest.fixture
def server(database_url: str) -> Iterator[Server]:
    running = Server(database_url)
    try:
        yield running
    finally:
        running.stop()


async def _make_accounts(http: httpx.AsyncClient, ids: list[str]) -> None:
    for account_id in ids:
        created = await http.post(
            "/customers",
            json={
                "id": f"cust-{account_id}",
                "name": "Kill Customer",
                "primaryEmail": "kill@example.test",
                "address": {},
                "account": {"id": account_id, "name": account_id},
            },
        )
        assert created.status_code == 201, created.text


async def test_kill9_loses_nothing_acknowledged(
    database_url: str, db: Database, server: Server
) -> None:
    org = f"kill9-{uuid.uuid4().hex}"
    key = create_key(database_url, org)
    seed = int(os.environ.get("KILL9_SEED", str(random.randrange(10**6))))
    chaos = random.Random(seed)
    figures = Figures()
    up, stop = Up(), asyncio.Event()
    owners = [OwnWriter(org, i, seed + i) for i in range(OWN_WRITERS)]
    sharers = [SharedWriter(org, i, seed + 100 + i) for i in range(SHARED_WRITERS)]
    server.start()
    headers = {"Authorization": f"Bearer {key}", "Content-Type": "application/json"}
    async with httpx.AsyncClient(base_url=server.base_url, headers=headers, timeout=30) as http:
        await _make_accounts(http, [w.account_id for w in owners] + ["shared"])
        big = {
            "accountId": "shared",
            "purpose": "PREPAID_CREDIT",
            "effectiveFrom": FROM,
            "creditAmount": SHARED_BIG,
            "priority": 0,
        }
        big_credit = (await http.post("/credits", content=exact_json(big))).json()
        up.event.set()
        writers = [asyncio.create_task(w.run(http, up, figures, stop)) for w in owners]
        writers += [
            asyncio.create_task(w.run(http, up, figures, stop, big_credit["id"])) for w in sharers
        ]
        for _ in range(CYCLES):
            await _under_load(figures, chaos.randint(5, 40), chaos.uniform(0, 0.05))
            up.event.clear()  # new requests wait; those in flight die with the server
            server.kill()
            await asyncio.to_thread(server.start)
            up.event.set()
        await asyncio.sleep(0.3)
        stop.set()
        await asyncio.gather(*writers)  # each finishes its current request, retried until acked

        for writer in owners:
            await _compare_with_model(http, writer)
        await _check_shared(http, sharers, big_credit["id"])
    server.stop()

    clock = FixedClock(datetime.now(UTC))
    assert await books_problems(db, clock, org) == []
    assert figures.server_errors == []
    print(
        f"\nkill9 {ENGINE} seed={seed}: cycles={CYCLES} acknowledged={figures.acknowledged} "
        f"retries={figures.retries} unanswered={figures.unanswered} lost=0"
    )


async def _compare_with_model(http: httpx.AsyncClient, writer: OwnWriter) -> None:
    """The account is exactly what the model made of the acknowledged writes: no grant or
    application lost, none twice, every amount and ledger line as acknowledged."""
    model = writer.model
    listed = await all_pages(http, "/credits", account_id=writer.account_id)
    keys = [c["idempotencyKey"] for c in listed]
    assert len(keys) == len(set(keys)) == writer.grants  # one credit per key, none lost
    assert {c["id"]: c["status"] for c in listed} == {
        cid: c.status for cid, c in model.credits.items()
    }
    for credit_id in model.credits:
        body = decimal_json(await http.get(f"/credits/{credit_id}"))
        got = credit_as_seen(body)
        assert got == model.credit_view(credit_id), credit_id
    path = f"/accounts/{writer.account_id}/credit_applications"
    applications = await all_pages(http, path)
    assert len(applications) == writer.invoices  # one application per invoice, none lost
    assert {a["invoiceId"]: a["status"] for a in applications} == {
        invoice: application.status for invoice, application in model.applications.items()
    }
    balance = decimal_json(await http.get(f"/accounts/{writer.account_id}/credit_balance"))
    assert {k: balance[k] for k in model.balance_view()} == model.balance_view()


async def _check_shared(http: httpx.AsyncClient, sharers: list[SharedWriter], big_id: str) -> None:
    granted = {cid: v for w in sharers for cid, v in w.granted.items()}
    debited = {inv: v for w in sharers for inv, v in w.debited.items()}
    listed = await all_pages(http, "/credits", account_id="shared")
    assert {c["id"]: c["creditAmount"] for c in listed if c["id"] != big_id} == granted
    keys = [c["idempotencyKey"] for c in listed if c["id"] != big_id]
    assert len(keys) == len(set(keys)) == sum(w.steps for w in sharers) - len(debited)
    big = decimal_json(await http.get(f"/credits/{big_id}"))
    assert big["consumedAmount"] == sum(debited.values(), Decimal(0))
    assert sorted(t["invoiceId"] for t in big["transactions"] if t["invoiceId"]) == sorted(debited)
    applications = await all_pages(http, "/accounts/shared/credit_applications")
    assert {a["invoiceId"]: a["appliedAmount"] for a in applications} == debited
    balance = decimal_json(await http.get("/accounts/shared/credit_balance"))
    total = SHARED_BIG + sum(granted.values(), Decimal(0))
    assert balance["activeCredits"] == total
    assert balance["availableBalance"] == total - sum(debited.values(), Decimal(0))
    assert balance["runningBalance"] == balance["availableBalance"]
