"""Webhook delivery by real `drawdown serve` processes (docs/webhooks.md, "Delivery"), to a
receiver on loopback that verifies every signature with `standardwebhooks`:

- kill -9 right after commits, with deliveries in flight and more waiting: after a restart
  every committed event is delivered, the ones in flight again with the same webhook-id;
- two server processes on one database deliver every event once, none twice.

Both engines. The figures (events, delivered, duplicates) are printed (`pytest -s`)."""

import asyncio
import os
import signal
import subprocess
import time
import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from tests.live_server import DRAWDOWN, create_key, free_port, server_env
from tests.webhook_receiver import Receiver, receiver

HOOKS_ENV = {
    "DRAWDOWN_WEBHOOK_ALLOW_HTTP": "1",
    "DRAWDOWN_WEBHOOK_ALLOW_PRIVATE": "1",
    "DRAWDOWN_WEBHOOK_RETRY_SCHEDULE": "0.2s,0.2s,0.2s,0.2s,0.2s,0.2s",
    "DRAWDOWN_WEBHOOK_POLL_SECONDS": "0.1s",
}
# a dead process's claims end soon (the kill -9 test); a live one's hold (the default, 30 s)
SHORT_CLAIMS = {"DRAWDOWN_WEBHOOK_CLAIM_SECONDS": "2s"}


class Server:
    """`drawdown serve` in its own process group, so SIGKILL reaches all of it."""

    def __init__(self, database_url: str, env: dict[str, str] | None = None) -> None:
        self.database_url = database_url
        self.env = env or {}
        self.port = free_port()
        self.base_url = f"http://127.0.0.1:{self.port}"
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> "Server":
        args = [DRAWDOWN, "serve", "--host", "127.0.0.1", "--port", str(self.port)]
        self.process = subprocess.Popen(
            [*args, "--workers", "1"],
            env={**server_env(self.database_url), **HOOKS_ENV, **self.env},
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        deadline = time.monotonic() + 60
        while True:
            assert self.process.poll() is None, "drawdown serve exited early"
            try:
                if httpx.get(f"{self.base_url}/health", timeout=1).status_code == 200:
                    return self
            except httpx.TransportError:
                pass
            assert time.monotonic() < deadline, "drawdown serve did not come up in 60 s"
            time.sleep(0.05)

    def kill(self) -> None:
        assert self.process is not None
        os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait()

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.kill()


@pytest.fixture
def servers(database_url: str) -> Iterator[list[Server]]:
    started: list[Server] = []
    yield started
    for server in started:
        server.stop()


def _client(server: Server, key: str) -> httpx.Client:
    return httpx.Client(
        base_url=server.base_url, headers={"Authorization": f"Bearer {key}"}, timeout=30
    )


def _setup(http: httpx.Client, hooks: Receiver, accounts: int) -> None:
    made = http.post("/webhook_endpoints", json={"url": hooks.url})
    assert made.status_code == 201, made.text
    hooks.secrets.append(made.json()["secret"])
    for n in range(accounts):
        customer = {
            "id": f"cust-{n}",
            "name": "Customer",
            "primaryEmail": "billing@example.test",
            "address": {"line1": "1 Main St", "country": "US"},
            "account": {"id": f"acc-{n}", "name": f"Account {n}"},
        }
        assert http.post("/customers", json=customer).status_code == 201


def _grant(account: str, n: int) -> dict[str, Any]:
    return {
        "accountId": account,
        "purpose": "PREPAID",
        "effectiveFrom": "2026-01-01",
        "creditAmount": n + 1,
        "priority": 1,
        "idempotencyKey": f"g-{n}",
    }


def _all_events(http: httpx.Client) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = []
    while True:
        params = {"after": found[-1]["id"]} if found else {}
        page = http.get("/events", params=params).json()["data"]
        if not page:
            return found
        found += page


def _wait_delivered(hooks: Receiver, ids: set[str], timeout: float = 60.0) -> set[str]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        got = {r.webhook_id for r in hooks.delivered()}
        if ids <= got:
            return got
        time.sleep(0.05)
    return {r.webhook_id for r in hooks.delivered()}


def test_kill9_right_after_commits_then_every_event_is_delivered_after_restart(
    database_url: str, servers: list[Server]
) -> None:
    key = create_key(database_url, f"org-{uuid.uuid4().hex}")
    writes = 60
    with receiver() as hooks:
        # slow answers: when the server dies, some deliveries are in flight, more wait
        hooks.delay = 0.5
        first = Server(database_url, SHORT_CLAIMS).start()
        servers.append(first)
        with _client(first, key) as http:
            _setup(http, hooks, accounts=3)
            for n in range(writes):
                answer = http.post("/credits", json=_grant(f"acc-{n % 3}", n))
                assert answer.status_code == 200, answer.text
        first.kill()  # right after the last commit was answered
        time.sleep(hooks.delay + 0.2)  # what was in flight reaches the receiver
        before_restart = len({r.webhook_id for r in hooks.delivered()})
        hooks.delay = 0.0
        second = Server(database_url, SHORT_CLAIMS).start()
        servers.append(second)
        with _client(second, key) as http:
            events = {event["id"] for event in _all_events(http)}
        assert len(events) == writes
        delivered = _wait_delivered(hooks, events)
        received = [r.webhook_id for r in hooks.delivered()]
        duplicates = len(received) - len(set(received))
        print(
            f"\nkill -9 ({os.environ.get('DRAWDOWN_TEST_DATABASE', 'sqlite')}): "
            f"{len(events)} events committed, {before_restart} reached the receiver from the "
            "killed process, "
            f"{len(delivered & events)} delivered in all once restarted, "
            f"{duplicates} of them twice (received, but the killed process never wrote so)"
        )
        assert delivered >= events
        assert hooks.unverified == []
        assert {r.event["type"] for r in hooks.delivered()} == {"credit.granted"}


def test_two_server_processes_deliver_every_event_once(
    database_url: str, servers: list[Server]
) -> None:
    key = create_key(database_url, f"org-{uuid.uuid4().hex}")
    writes = 200
    with receiver() as hooks:
        pair = [Server(database_url).start(), Server(database_url).start()]
        servers.extend(pair)
        with _client(pair[0], key) as http:
            _setup(http, hooks, accounts=8)

        async def write_all() -> None:
            limits = httpx.Limits(max_connections=16)
            headers = {"Authorization": f"Bearer {key}"}
            async with httpx.AsyncClient(headers=headers, timeout=30, limits=limits) as http:
                gate = asyncio.Semaphore(16)

                async def one(n: int) -> None:
                    async with gate:
                        server = pair[n % 2]
                        body = _grant(f"acc-{n % 8}", n)
                        answer = await http.post(f"{server.base_url}/credits", json=body)
                        assert answer.status_code == 200, answer.text

                await asyncio.gather(*(one(n) for n in range(writes)))

        asyncio.run(write_all())
        with _client(pair[1], key) as http:
            events = {event["id"] for event in _all_events(http)}
        assert len(events) == writes
        delivered = _wait_delivered(hooks, events)
        time.sleep(1.0)  # a double would come within a claim's time
        received = [r.webhook_id for r in hooks.received]
        print(
            f"\ntwo processes ({os.environ.get('DRAWDOWN_TEST_DATABASE', 'sqlite')}): "
            f"{len(events)} events, {len(set(received))} delivered, "
            f"{len(received) - len(set(received))} twice"
        )
        assert delivered >= events
        assert len(received) == len(set(received)) == writes
        assert hooks.unverified == []
