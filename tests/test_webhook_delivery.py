"""Webhook delivery's own edges (docs/webhooks.md, "Delivery"): connections go only to the
addresses that were vetted (DNS is answered by a resolver at the system's edge), a fault of
drawdown's is a failed attempt that follows the schedule, a loop that keeps failing backs
off, and TLS checks the endpoint's own name though the connection goes to a vetted address."""

import asyncio
import socket
import ssl
from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx
import pytest
import trustme
from sqlalchemy import update

from drawdown.clock import FixedClock
from drawdown.services.delivery import MAX_BACKOFF_SECONDS, backoff_seconds
from drawdown.services.webhook_settings import WebhookSettings
from drawdown.store.database import Database
from drawdown.store.tables import webhook_endpoints
from tests.helpers import decimal_json, grant, make_account
from tests.test_webhooks import LOCAL, Caller, _caller, deliver, register
from tests.webhook_receiver import Receiver, receiver

NAME = "hooks.rebinding.test"


@pytest.fixture
async def caller(db: Database, clock: FixedClock) -> AsyncIterator[Caller]:
    async for found in _caller(db, clock, LOCAL):
        yield found


@pytest.fixture
def hooks() -> Iterator[Receiver]:
    with receiver() as got:
        yield got


class Rebinding:
    """A resolver that answers NAME with `answers[n]` at its n-th question (the last answer
    after that), and asks the system for any other name: what a hostile DNS server does."""

    def __init__(self, answers: list[str]) -> None:
        self.answers = answers
        self.asked = 0

    def install(self, monkeypatch: pytest.MonkeyPatch) -> None:
        loop = asyncio.get_running_loop()
        system = loop.getaddrinfo

        async def getaddrinfo(host: Any, port: Any, *args: Any, **kwargs: Any) -> Any:
            if host != NAME:
                return await system(host, port, *args, **kwargs)
            answer = self.answers[min(self.asked, len(self.answers) - 1)]
            self.asked += 1
            return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", (answer, int(port)))]

        monkeypatch.setattr(loop, "getaddrinfo", getaddrinfo)


async def test_delivery_connects_only_to_the_address_it_vetted(
    caller: Caller, hooks: Receiver, monkeypatch: pytest.MonkeyPatch
) -> None:
    # registration's check and delivery's connection each ask once; any later question (a
    # second resolution by the HTTP client) would get an address where nothing listens
    resolver = Rebinding(["127.0.0.1", "127.0.0.1", "127.0.0.2"])
    resolver.install(monkeypatch)
    port = hooks.url.split(":")[2].split("/")[0]
    hooks.url = f"http://{NAME}:{port}/hooks"
    endpoint = await register(caller, hooks)
    assert resolver.asked == 1
    await make_account(caller.http)
    await grant(caller.http, amount=1)
    await deliver(caller)
    (got,) = hooks.delivered()
    assert got.host == f"{NAME}:{port}"  # the name, not the address, in the request
    assert resolver.asked == 2
    log = decimal_json(await caller.http.get(f"/webhook_endpoints/{endpoint['id']}/deliveries"))
    assert log["data"][0]["status"] == "SUCCEEDED"


async def test_a_name_that_now_resolves_to_a_private_address_is_not_connected_to(
    db: Database, clock: FixedClock, hooks: Receiver, monkeypatch: pytest.MonkeyPatch
) -> None:
    # registered while the name pointed at a public address; at delivery it points at the
    # receiver on loopback, which a strict server must never reach
    resolver = Rebinding(["93.184.215.14", "127.0.0.1"])
    resolver.install(monkeypatch)
    port = hooks.url.split(":")[2].split("/")[0]
    hooks.url = f"http://{NAME}:{port}/hooks"
    strict = WebhookSettings(allow_http=True, retry_schedule=(60.0,))
    async for caller in _caller(db, clock, strict):
        endpoint = await register(caller, hooks)
        await make_account(caller.http)
        await grant(caller.http, amount=1)
        await deliver(caller)
        assert hooks.received == []
        log = decimal_json(await caller.http.get(f"/webhook_endpoints/{endpoint['id']}/deliveries"))
        (attempt,) = log["data"][0]["attempts"]
        assert attempt["error"].startswith(f"not sent: the host '{NAME}' resolves to 127.0.0.1")
        assert resolver.asked == 2


async def test_a_fault_of_drawdowns_is_a_failed_attempt_that_follows_the_schedule(
    db: Database, caller: Caller, hooks: Receiver, caplog: pytest.LogCaptureFixture
) -> None:
    endpoint = await register(caller, hooks)
    # a secret the signing library cannot decode: every attempt raises inside drawdown
    async with db.write() as conn:
        await conn.execute(
            update(webhook_endpoints)
            .where(webhook_endpoints.c.id == endpoint["id"])
            .values(secret="whsec_!!notbase64")
        )
    await make_account(caller.http)
    await grant(caller.http, amount=1)
    for _ in range(3):
        await deliver(caller)
        await asyncio.sleep(0.3)
    assert await deliver(caller) == 0  # FAILED after the schedule (0.2 s, 0.2 s): no more
    assert hooks.received == []
    assert caller.app.state.deliverer.faults == 3
    log = decimal_json(await caller.http.get(f"/webhook_endpoints/{endpoint['id']}/deliveries"))
    (delivery,) = log["data"]
    assert delivery["status"] == "FAILED"
    assert [a["error"] for a in delivery["attempts"]] == [
        "not sent: drawdown failed (Error); see the server log"
    ] * 3
    traced = [r for r in caplog.records if r.name == "drawdown.delivery" and r.exc_info]
    assert len(traced) == 3


def test_a_failing_loop_waits_longer_each_round_up_to_a_ceiling() -> None:
    waits = [backoff_seconds(n, 0.5) for n in range(1, 10)]
    assert waits[:4] == [1.0, 2.0, 4.0, 8.0]
    assert waits == sorted(waits)
    assert waits[-1] == MAX_BACKOFF_SECONDS
    assert backoff_seconds(10**6, 0.5) == MAX_BACKOFF_SECONDS


@pytest.fixture(scope="module")
def authority() -> trustme.CA:
    """A certificate authority of the test's own (the system's trust store knows nothing of
    it): what signs the receivers' certificates."""
    return trustme.CA()


def tls_server(authority: trustme.CA, name: str) -> ssl.SSLContext:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    authority.issue_cert(name).configure_cert(context)
    return context


def trust(authority: trustme.CA, monkeypatch: pytest.MonkeyPatch) -> None:
    """Delivery's trust store, at the system's edge, also trusts `authority`."""
    made = httpx.create_ssl_context

    def with_authority(*args: Any, **kwargs: Any) -> ssl.SSLContext:
        context = made(*args, **kwargs)
        authority.configure_trust(context)
        return context

    monkeypatch.setattr(httpx, "create_ssl_context", with_authority)


async def _attempt_over_tls(
    caller: Caller, authority: trustme.CA, certified: str, monkeypatch: pytest.MonkeyPatch
) -> tuple[Receiver, dict[str, Any]]:
    """One delivery to https://NAME (resolved to the receiver on loopback), whose certificate
    names `certified`: the receiver and the delivery's log entry."""
    Rebinding(["127.0.0.1"]).install(monkeypatch)
    with receiver(tls=tls_server(authority, certified)) as hooks:
        port = hooks.url.split(":")[2].split("/")[0]
        hooks.url = f"https://{NAME}:{port}/hooks"
        endpoint = await register(caller, hooks)
        await make_account(caller.http)
        await grant(caller.http, amount=1)
        await deliver(caller)
        log = decimal_json(await caller.http.get(f"/webhook_endpoints/{endpoint['id']}/deliveries"))
    return hooks, log["data"][0]


async def test_delivery_over_tls_checks_the_certificate_against_the_endpoints_name(
    caller: Caller, authority: trustme.CA, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Delivery connects to the vetted address, yet TLS (the server name it sends and the name
    the certificate must carry) is the endpoint's host: a certificate for NAME is accepted."""
    trust(authority, monkeypatch)
    hooks, delivery = await _attempt_over_tls(caller, authority, NAME, monkeypatch)
    (got,) = hooks.delivered()
    assert got.host.startswith(f"{NAME}:") and hooks.unverified == []
    assert delivery["status"] == "SUCCEEDED"


async def test_delivery_over_tls_refuses_a_certificate_for_another_name(
    caller: Caller, authority: trustme.CA, monkeypatch: pytest.MonkeyPatch
) -> None:
    trust(authority, monkeypatch)
    hooks, delivery = await _attempt_over_tls(caller, authority, "someone.else.test", monkeypatch)
    assert hooks.received == []
    (attempt,) = delivery["attempts"]
    assert "Hostname mismatch" in attempt["error"], attempt
    assert delivery["status"] == "PENDING"  # a failed attempt: retried on the schedule


async def test_delivery_over_tls_refuses_a_certificate_no_trusted_authority_signed(
    caller: Caller, authority: trustme.CA, monkeypatch: pytest.MonkeyPatch
) -> None:
    hooks, delivery = await _attempt_over_tls(caller, authority, NAME, monkeypatch)
    assert hooks.received == []
    (attempt,) = delivery["attempts"]
    assert "unable to get local issuer certificate" in attempt["error"], attempt
