"""Events and webhooks in-process (docs/webhooks.md), delivered to a real receiver on loopback
that verifies every signature with the `standardwebhooks` package: each event type from the
action that causes it, with its actor; nothing for a refused, rolled-back or replayed request;
thresholds crossed once and re-armed; retries with the same webhook-id; endpoints disabled
after failing; URL rules; rotation; the deliveries log, replay, GET /events; tenancy.

Delivery is drained by hand (ASGITransport runs no lifespan): `deliver(app)` sends what is due
and waits for the answers."""

import asyncio
import uuid
from collections.abc import AsyncIterator, Iterator
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import select

from drawdown.api.app import create_app
from drawdown.clock import FixedClock
from drawdown.jobs.expiry import sweep
from drawdown.services import webhooks as webhooks_service
from drawdown.services.delivery import Deliverer
from drawdown.services.keys import issue_key
from drawdown.services.webhook_settings import WebhookSettings
from drawdown.store.database import Database
from drawdown.store.tables import webhook_endpoints
from tests.conftest import NOW
from tests.helpers import apply, decimal_json, grant, grant_body, make_account
from tests.webhook_receiver import Receiver, receiver

D = Decimal
LOCAL = WebhookSettings(
    allow_http=True, allow_private=True, retry_schedule=(0.2, 0.2), poll_seconds=0.05
)


class Caller:
    def __init__(self, http: httpx.AsyncClient, key_id: str, app: FastAPI) -> None:
        self.http = http
        self.key_id = key_id
        self.app = app


async def _caller(
    db: Database, clock: FixedClock, settings: WebhookSettings, *, read_only: bool = False
) -> AsyncIterator[Caller]:
    async with db.write() as conn:
        issued = await issue_key(conn, f"org-{uuid.uuid4().hex}", read_only, NOW)
    app = create_app(db, clock, webhooks=settings)
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app),
        base_url="http://drawdown.test",
        headers={"Authorization": f"Bearer {issued.key}"},
    ) as http:
        yield Caller(http, issued.id, app)
    await app.state.deliverer.stop()


@pytest.fixture
async def caller(db: Database, clock: FixedClock) -> AsyncIterator[Caller]:
    async for found in _caller(db, clock, LOCAL):
        yield found


@pytest.fixture
def hooks() -> Iterator[Receiver]:
    with receiver() as got:
        yield got


async def register(
    caller: Caller, hooks: Receiver, types: list[str] | None = None
) -> dict[str, Any]:
    body: dict[str, Any] = {"url": hooks.url, "description": "test receiver"}
    if types is not None:
        body["eventTypes"] = types
    response = await caller.http.post("/webhook_endpoints", json=body)
    assert response.status_code == 201, response.text
    endpoint = dict(response.json())
    assert endpoint["secret"].startswith("whsec_")
    hooks.secrets.append(endpoint["secret"])
    return endpoint


async def deliver(caller: Caller) -> int:
    deliverer: Deliverer = caller.app.state.deliverer
    return await deliverer.drain()


async def events_of(caller: Caller, **params: str) -> list[dict[str, Any]]:
    response = await caller.http.get("/events", params=params)
    assert response.status_code == 200, response.text
    return list(decimal_json(response)["data"])


async def in_order(caller: Caller, hooks: Receiver) -> list[dict[str, Any]]:
    """What the receiver got (each once), in the order the events happened: deliveries are
    sent concurrently and may arrive in any order."""
    position = {event["id"]: n for n, event in enumerate(await events_of(caller))}
    got = [r.event for r in hooks.delivered()]
    assert len({e["id"] for e in got}) == len(got), "an event was delivered twice"
    return sorted(got, key=lambda event: position[event["id"]])


async def types_of(caller: Caller, hooks: Receiver) -> list[str]:
    return [event["type"] for event in await in_order(caller, hooks)]


async def of_type(caller: Caller, hooks: Receiver, kind: str) -> list[dict[str, Any]]:
    return [event for event in await in_order(caller, hooks) if event["type"] == kind]


# -- each event type from the action that causes it ---------------------------------------------


async def test_credit_and_application_events_reach_a_verifying_receiver(
    caller: Caller, hooks: Receiver
) -> None:
    await register(caller, hooks)
    await make_account(caller.http)
    first = await grant(caller.http, amount=100.25, idempotencyKey="g-1")
    second = await grant(caller.http, amount=50)
    held = await apply(caller.http, "inv-hold", [10.5], mode="HOLD")
    assert held.status_code == 200, held.text
    assert (
        await caller.http.post("/accounts/acc-1/credit_applications/inv-hold/capture")
    ).is_success
    released = await apply(caller.http, "inv-rel", [5], mode="HOLD")
    assert released.status_code == 200
    assert (
        await caller.http.post("/accounts/acc-1/credit_applications/inv-rel/release")
    ).is_success
    # the whole of the first credit: it reaches CONSUMED
    debit = await apply(caller.http, "inv-all", [89.75], mode="DEBIT")
    assert debit.status_code == 200, debit.text
    voided = await caller.http.post(f"/credits/{second['id']}/void")
    assert voided.status_code == 200, voided.text

    await deliver(caller)
    assert hooks.unverified == []
    assert await types_of(caller, hooks) == [
        "credit.granted",
        "credit.granted",
        "application.held",
        "application.debited",
        "application.held",
        "application.released",
        "application.debited",
        "credit.consumed",
        "credit.voided",
        "balance.depleted",
    ]
    by_type = {event["type"]: event for event in await in_order(caller, hooks)}
    granted = (await of_type(caller, hooks, "credit.granted"))[0]
    assert granted["data"]["credit"]["id"] == first["id"]
    assert granted["data"]["credit"]["creditAmount"] == D("100.25")
    assert by_type["credit.consumed"]["data"]["credit"]["status"] == "CONSUMED"
    assert by_type["credit.voided"]["data"]["voidedAmount"] == 50
    assert by_type["credit.voided"]["data"]["credit"]["status"] == "VOIDED"
    assert by_type["application.released"]["data"]["application"]["invoiceId"] == "inv-rel"
    assert by_type["balance.depleted"]["data"]["balance"]["runningBalance"] == 0
    for got in hooks.delivered():
        assert got.event["actor"] == caller.key_id
        assert got.webhook_id == got.event["id"]
        assert got.event["id"].startswith("evt.")
    # GET /events answers the same events, in the same order
    listed = await events_of(caller)
    assert sorted(e["id"] for e in listed) == sorted(r.webhook_id for r in hooks.delivered())
    assert [e["type"] for e in await events_of(caller, type="credit.granted")] == [
        "credit.granted"
    ] * 2
    after_first = await events_of(caller, after=listed[0]["id"])
    assert [e["id"] for e in after_first] == [e["id"] for e in listed[1:]]


async def test_a_back_dated_grant_is_granted_and_expired_by_its_granter(
    caller: Caller, hooks: Receiver
) -> None:
    await register(caller, hooks)
    await make_account(caller.http)
    await grant(caller.http, amount=7, effectiveFrom="2026-01-01", effectiveUntil="2026-02-01")
    await deliver(caller)
    assert await types_of(caller, hooks) == ["credit.granted", "credit.expired"]
    expired = (await of_type(caller, hooks, "credit.expired"))[0]
    assert expired["data"]["expiredAmount"] == 7
    assert expired["actor"] == caller.key_id


async def test_the_sweep_expires_and_reports_expiring_soon_once_as_system(
    caller: Caller, hooks: Receiver, db: Database, clock: FixedClock
) -> None:
    await register(caller, hooks)
    await make_account(caller.http)
    soon = await grant(caller.http, amount=30, effectiveUntil="2026-11-28")
    far = await grant(caller.http, amount=40, effectiveUntil="2026-12-31")
    await sweep(db, clock)
    await sweep(db, clock)  # once per credit
    await deliver(caller)
    expiring = await of_type(caller, hooks, "credit.expiring_soon")
    assert [e["data"]["credit"]["id"] for e in expiring] == [soon["id"]]
    assert expiring[0]["data"]["daysBefore"] == 7
    assert expiring[0]["data"]["lastDay"] == "2026-11-28"
    assert expiring[0]["data"]["remainingAmount"] == 30
    assert expiring[0]["actor"] == "system"

    # the organization asks for 40 days: the other one is due now, once
    response = await caller.http.put("/balance_alerts", json={"expiringSoonDays": 40})
    assert response.status_code == 200, response.text
    assert response.json()["expiringSoonDays"] == 40
    await sweep(db, clock)
    # past its last day: the sweep expires it, as system
    clock.advance(timedelta(days=5))
    await sweep(db, clock)
    await sweep(db, clock)
    clock.set(NOW)
    await deliver(caller)
    expiring = await of_type(caller, hooks, "credit.expiring_soon")
    assert [e["data"]["credit"]["id"] for e in expiring] == [soon["id"], far["id"]]
    expired = await of_type(caller, hooks, "credit.expired")
    assert [e["data"]["credit"]["id"] for e in expired] == [soon["id"]]
    assert expired[0]["actor"] == "system"
    assert expired[0]["data"]["expiredAmount"] == 30


async def test_usage_left_uncovered_is_reported_at_most_hourly_with_every_amount(
    caller: Caller, hooks: Receiver, clock: FixedClock
) -> None:
    await register(caller, hooks, ["usage.uncovered", "credit.consumed", "balance.depleted"])
    await make_account(caller.http)
    await grant(caller.http, amount=1)
    meter = {
        "id": "um.calls",
        "name": "Calls",
        "eventSchemaName": "call",
        "aggregation": "COUNT",
        "creditRate": {"credits": 0.4, "perQuantity": 1},
    }
    assert (await caller.http.post("/usage_meters", json=meter)).status_code == 201

    async def use(n: int, first: int) -> None:
        events = [
            {
                "schemaName": "call",
                "id": f"e-{first + i}",
                "timestamp": "2026-11-24T11:00:00Z",
                "accountId": "acc-1",
            }
            for i in range(n)
        ]
        response = await caller.http.post("/ingestBatch", json={"events": events})
        assert response.status_code == 202, response.text
        await caller.app.state.applier.drain()

    await use(5, 0)  # 2 costs 0.4 x 5: 1 paid, 1 uncovered
    clock.advance(timedelta(minutes=30))
    await use(2, 5)  # 0.8 more uncovered: within the hour, it waits
    clock.advance(timedelta(minutes=31))
    await use(1, 7)  # 0.4 more: an hour since the first report, all of it reported
    clock.set(NOW)
    await deliver(caller)
    uncovered = await of_type(caller, hooks, "usage.uncovered")
    assert [e["data"]["uncoveredAmount"] for e in uncovered] == [D(1), D("1.2")]
    assert all(e["actor"] == "system" for e in uncovered)
    assert uncovered[0]["data"]["unit"] == "USD"
    assert uncovered[1]["data"]["since"] == "2026-11-24T12:30:00Z"
    assert len(await of_type(caller, hooks, "credit.consumed")) == 1
    assert len(await of_type(caller, hooks, "balance.depleted")) == 1
    usage = decimal_json(await caller.http.get("/accounts/acc-1/usage"))
    assert usage["meters"][0]["uncovered"] == sum(e["data"]["uncoveredAmount"] for e in uncovered)


# -- thresholds ----------------------------------------------------------------------------------


async def test_thresholds_fire_once_per_crossing_and_rearm_when_the_balance_rises(
    caller: Caller, hooks: Receiver
) -> None:
    await register(caller, hooks, ["balance.low", "balance.depleted"])
    await make_account(caller.http)
    org = await caller.http.put("/balance_alerts", json={"thresholds": [5]})
    assert org.status_code == 200, org.text
    own = await caller.http.put("/accounts/acc-1/balance_alerts", json={"thresholds": [10, 100.5]})
    assert own.status_code == 200, own.text
    assert decimal_json(own) == {
        "accountId": "acc-1",
        "thresholds": [D("100.5"), 10],
        "walletThresholds": [],
        "source": {"thresholds": "ACCOUNT", "walletThresholds": "ORGANIZATION"},
        "fired": [],
        "walletFired": [],
    }
    await grant(caller.http, amount=200)
    steps = [("d1", 99), ("d2", 1), ("d3", 92)]  # 101, 100 (<100.5), 8 (<10)
    for invoice, amount in steps:
        assert (await apply(caller.http, invoice, [amount], mode="DEBIT")).status_code == 200
    assert (await apply(caller.http, "d4", [1], mode="DEBIT")).status_code == 200  # 7: no more
    await deliver(caller)
    low = await of_type(caller, hooks, "balance.low")
    assert [e["data"]["threshold"] for e in low] == [D("100.5"), 10]
    assert [e["data"]["balance"]["runningBalance"] for e in low] == [100, 8]
    state = decimal_json(await caller.http.get("/accounts/acc-1/balance_alerts"))
    assert state["fired"] == [D("100.5"), 10]

    # a grant raises it above 10 (not above 100.5): 10 is armed again, 100.5 is not
    await grant(caller.http, amount=13)  # 20
    assert (await apply(caller.http, "d5", [15], mode="DEBIT")).status_code == 200  # 5
    await deliver(caller)
    low = await of_type(caller, hooks, "balance.low")
    assert [e["data"]["threshold"] for e in low] == [D("100.5"), 10, 10]
    # a hold to 0: depleted, once; released, and held again: once more
    assert (await apply(caller.http, "h1", [5], mode="HOLD")).status_code == 200
    assert (await apply(caller.http, "h1", [5], mode="HOLD")).status_code == 200
    assert (await caller.http.post("/accounts/acc-1/credit_applications/h1/release")).is_success
    assert (await apply(caller.http, "h2", [5], mode="HOLD")).status_code == 200
    await deliver(caller)
    assert len(await of_type(caller, hooks, "balance.depleted")) == 2
    assert len(await of_type(caller, hooks, "balance.low")) == 3
    # the account falls back to the organization's list
    back = decimal_json(await caller.http.put("/accounts/acc-1/balance_alerts", json={}))
    assert back["thresholds"] == [5]
    assert back["source"]["thresholds"] == "ORGANIZATION"


# -- nothing for what did not happen -------------------------------------------------------------


async def test_nothing_is_sent_for_refused_rolled_back_or_replayed_requests(
    caller: Caller, hooks: Receiver
) -> None:
    await register(caller, hooks)
    await make_account(caller.http)
    await grant(caller.http, amount=10, idempotencyKey="once")
    await deliver(caller)
    assert await types_of(caller, hooks) == ["credit.granted"]
    # the same grant again (idempotent), a debited invoice debited and captured again
    assert (
        await caller.http.post("/credits", json=grant_body(amount=10, idempotencyKey="once"))
    ).is_success
    assert (await apply(caller.http, "inv-1", [4], mode="DEBIT")).status_code == 200
    assert (await apply(caller.http, "inv-1", [4], mode="DEBIT")).status_code == 200
    assert (await caller.http.post("/accounts/acc-1/credit_applications/inv-1/capture")).is_success
    # refused: a batch with an unknown account is all or nothing; a debit of another amount
    batch = {"creditRequests": [grant_body(amount=1), grant_body("nobody", amount=1)]}
    assert (await caller.http.post("/credits", json=batch)).status_code == 404
    assert (await apply(caller.http, "inv-1", [5], mode="DEBIT")).status_code == 409
    await deliver(caller)
    assert await types_of(caller, hooks) == ["credit.granted", "application.debited"]
    assert [e["type"] for e in await events_of(caller)] == await types_of(caller, hooks)


async def test_a_write_the_database_rolls_back_records_no_event(
    caller: Caller, hooks: Receiver, db: Database
) -> None:
    """The save fails after the events' insert (a unique key taken under it): the
    transaction rolls back, and neither the change nor its events exist."""
    await register(caller, hooks)
    await make_account(caller.http)
    credit = await grant(caller.http, amount=10)
    writes = caller.app.state.writes
    original = writes.store.transaction

    from contextlib import asynccontextmanager

    @asynccontextmanager
    async def failing():  # type: ignore[no-untyped-def]
        async with original() as tx:
            save = tx.save

            async def save_then_fail(changes, **kwargs):  # type: ignore[no-untyped-def]
                await save(changes, **kwargs)
                assert changes.outbox, "the change recorded its event"
                raise RuntimeError("the database refused the transaction")

            tx.save = save_then_fail
            yield tx

    writes.store.transaction = failing
    try:
        response = await caller.http.post(f"/credits/{credit['id']}/void")
    except RuntimeError:
        response = None
    finally:
        writes.store.transaction = original
    assert response is None or response.status_code == 500
    await deliver(caller)
    assert await types_of(caller, hooks) == ["credit.granted"]
    assert [e["type"] for e in await events_of(caller)] == ["credit.granted"]
    assert (await caller.http.get(f"/credits/{credit['id']}")).json()["status"] == "ACTIVE"


# -- delivery: retries, disabling, rotation ------------------------------------------------------


async def test_a_failed_delivery_is_retried_with_the_same_webhook_id(
    db: Database, clock: FixedClock, hooks: Receiver
) -> None:
    # a first wait long enough that a loaded machine's slow commit does not make the retry
    # due within the first drain
    settings = WebhookSettings(allow_http=True, allow_private=True, retry_schedule=(1.0,))
    async for caller in _caller(db, clock, settings):
        await _retried_with_the_same_webhook_id(caller, hooks)


async def _retried_with_the_same_webhook_id(caller: Caller, hooks: Receiver) -> None:
    hooks.answer = lambda _id, attempt: 503 if attempt == 1 else 200
    endpoint = await register(caller, hooks)
    await make_account(caller.http)
    await grant(caller.http, amount=1)
    await deliver(caller)
    assert hooks.delivered() == []
    await asyncio.sleep(1.1)  # the schedule's first wait
    await deliver(caller)
    answered = [(r.webhook_id, r.answered) for r in hooks.received]
    assert len(answered) == 2
    assert answered[0][0] == answered[1][0]
    assert [status for _, status in answered] == [503, 200]
    log = decimal_json(await caller.http.get(f"/webhook_endpoints/{endpoint['id']}/deliveries"))
    (delivery,) = log["data"]
    assert delivery["status"] == "SUCCEEDED"
    assert delivery["eventId"] == answered[0][0]
    assert [a["statusCode"] for a in delivery["attempts"]] == [503, 200]
    assert delivery["attempts"][0]["error"] == "the endpoint answered 503"
    assert delivery["attempts"][1]["error"] is None
    assert delivery["nextAttemptAt"] is None


async def test_a_delivery_that_never_succeeds_fails_after_the_schedule(
    caller: Caller, hooks: Receiver
) -> None:
    hooks.answer = lambda _id, _attempt: 500
    endpoint = await register(caller, hooks)
    await make_account(caller.http)
    await grant(caller.http, amount=1)
    for _ in range(3):
        await deliver(caller)
        await asyncio.sleep(0.3)
    await deliver(caller)
    assert len(hooks.received) == 3  # the first attempt and the schedule's two retries
    assert len({r.webhook_id for r in hooks.received}) == 1
    log = decimal_json(await caller.http.get(f"/webhook_endpoints/{endpoint['id']}/deliveries"))
    assert log["data"][0]["status"] == "FAILED"
    assert len(log["data"][0]["attempts"]) == 3


async def test_an_endpoint_failing_every_attempt_long_enough_is_disabled(
    db: Database, clock: FixedClock, hooks: Receiver
) -> None:
    settings = WebhookSettings(
        allow_http=True,
        allow_private=True,
        retry_schedule=(0.1,) * 10,
        disable_after_seconds=0.3,
    )
    async for caller in _caller(db, clock, settings):
        hooks.answer = lambda _id, _attempt: 500
        endpoint = await register(caller, hooks)
        await make_account(caller.http)
        await grant(caller.http, amount=1)
        for _ in range(8):
            await deliver(caller)
            await asyncio.sleep(0.12)
        found = decimal_json(await caller.http.get(f"/webhook_endpoints/{endpoint['id']}"))
        assert found["status"] == "DISABLED"
        assert "every delivery attempt failed from" in found["disabledReason"]
        assert "the endpoint answered 500" in found["disabledReason"]
        tried = len(hooks.received)
        # disabled: nothing more is sent, and replay is refused until it is enabled again
        await grant(caller.http, amount=1)
        await asyncio.sleep(0.15)
        await deliver(caller)
        assert len(hooks.received) == tried
        replay = await caller.http.post(
            f"/webhook_endpoints/{endpoint['id']}/replay", json={"since": "2026-01-01T00:00:00Z"}
        )
        assert replay.status_code == 409
        hooks.answer = lambda _id, _attempt: 200
        enabled = await caller.http.patch(
            f"/webhook_endpoints/{endpoint['id']}", json={"status": "ENABLED"}
        )
        assert enabled.json()["status"] == "ENABLED"
        assert enabled.json()["disabledReason"] is None
        await asyncio.sleep(0.15)
        await deliver(caller)
        # what waited is sent; what was recorded while it was disabled only by a replay
        assert len({r.webhook_id for r in hooks.delivered()}) == 1
        replay = await caller.http.post(
            f"/webhook_endpoints/{endpoint['id']}/replay", json={"since": "2026-01-01T00:00:00Z"}
        )
        assert replay.json() == {"replayed": 2, "next": None}
        await deliver(caller)
        assert len({r.webhook_id for r in hooks.delivered()}) == 2


async def test_after_a_rotation_both_secrets_sign_and_each_verifies(
    caller: Caller, hooks: Receiver
) -> None:
    endpoint = await register(caller, hooks)
    old = hooks.secrets[0]
    rotated = await caller.http.post(f"/webhook_endpoints/{endpoint['id']}/rotate_secret")
    assert rotated.status_code == 200, rotated.text
    new = rotated.json()["secret"]
    assert new != old and new.startswith("whsec_")
    assert "secret" not in (await caller.http.get(f"/webhook_endpoints/{endpoint['id']}")).json()
    await make_account(caller.http)
    await grant(caller.http, amount=1)
    for secret in ([old], [new]):
        hooks.secrets[:] = secret
        await caller.http.post(
            f"/webhook_endpoints/{endpoint['id']}/replay", json={"since": "2026-01-01T00:00:00Z"}
        )
        await deliver(caller)
    assert hooks.unverified == []
    assert len(hooks.delivered()) == 3  # the first delivery and two replays
    assert all(len(r.signature.split(" ")) == 2 for r in hooks.delivered())


# -- URL rules -----------------------------------------------------------------------------------


@pytest.fixture
async def strict(db: Database, clock: FixedClock) -> AsyncIterator[Caller]:
    async for found in _caller(db, clock, WebhookSettings()):
        yield found


@pytest.mark.parametrize(
    ("url", "words"),
    [
        ("http://example.com/hooks", "must start with https://"),
        ("https://127.0.0.1/hooks", "a loopback address"),
        ("https://localhost:8443/hooks", "a loopback address"),
        ("https://10.1.2.3/hooks", "a private address"),
        ("https://192.168.0.10/hooks", "a private address"),
        ("https://169.254.169.254/latest/meta-data", "a link-local address"),
        ("https://[::1]/hooks", "a loopback address"),
        ("https://[::ffff:10.0.0.1]/hooks", "a private address"),
        ("https://[fe80::1]/hooks", "a link-local address"),
        ("https://0.0.0.0/hooks", "an unspecified address"),
        ("https://100.64.0.1/hooks", "a reserved address"),
        ("https://user:secret@example.com/hooks", "must not hold a user name or password"),
        ("ftp://example.com/hooks", "must start with https://"),
        ("https:///hooks", "must name a host"),
        ("https://no-such-host.invalid/hooks", "could not be resolved"),
    ],
)
async def test_urls_to_private_addresses_or_without_https_are_refused(
    strict: Caller, url: str, words: str
) -> None:
    response = await strict.http.post("/webhook_endpoints", json={"url": url})
    assert response.status_code == 400, response.text
    message = response.json()["message"]
    assert message.startswith("url: ")
    assert words in message
    assert (await strict.http.get("/webhook_endpoints")).json()["data"] == []


async def test_a_url_is_checked_again_at_delivery(
    db: Database, clock: FixedClock, hooks: Receiver, caller: Caller
) -> None:
    endpoint = await register(caller, hooks)
    await make_account(caller.http)
    await grant(caller.http, amount=1)
    # another process, whose rules refuse loopback, takes the delivery
    strict_deliverer = Deliverer(db, WebhookSettings(allow_http=True, retry_schedule=(60.0,)))
    try:
        assert await strict_deliverer.drain() >= 1
    finally:
        await strict_deliverer.stop()
    assert hooks.received == []
    log = decimal_json(await caller.http.get(f"/webhook_endpoints/{endpoint['id']}/deliveries"))
    attempt = log["data"][0]["attempts"][0]
    assert attempt["statusCode"] is None
    assert attempt["error"].startswith("not sent: the host '127.0.0.1' resolves to 127.0.0.1")
    assert log["data"][0]["status"] == "PENDING"


# -- the API: endpoints, replay, events, tenancy -------------------------------------------------


async def test_endpoints_are_listed_changed_and_deleted(caller: Caller, hooks: Receiver) -> None:
    created = await register(caller, hooks, ["credit.granted", "credit.voided"])
    assert created["eventTypes"] == ["credit.granted", "credit.voided"]
    assert created["status"] == "ENABLED"
    assert created["id"].startswith("whep.")
    listed = (await caller.http.get("/webhook_endpoints")).json()
    assert [e["id"] for e in listed["data"]] == [created["id"]]
    assert "secret" not in listed["data"][0]
    changed = await caller.http.patch(
        f"/webhook_endpoints/{created['id']}", json={"eventTypes": [], "description": None}
    )
    assert changed.status_code == 200, changed.text
    assert changed.json()["eventTypes"] == []
    assert changed.json()["description"] is None
    assert changed.json()["url"] == hooks.url
    unknown = await caller.http.post(
        "/webhook_endpoints", json={"url": hooks.url, "eventTypes": ["credit.nope"]}
    )
    assert unknown.status_code == 400
    assert "eventTypes" in unknown.json()["message"]
    twice = await caller.http.post(
        "/webhook_endpoints",
        json={"url": hooks.url, "eventTypes": ["credit.granted", "credit.granted"]},
    )
    assert twice.status_code == 400
    assert twice.json() == {"message": "eventTypes must not name a type twice"}
    deleted = await caller.http.delete(f"/webhook_endpoints/{created['id']}")
    assert deleted.status_code == 204
    assert (await caller.http.get(f"/webhook_endpoints/{created['id']}")).status_code == 404


async def test_an_endpoint_gets_only_the_types_it_takes(caller: Caller, hooks: Receiver) -> None:
    with receiver() as other:
        await register(caller, hooks, ["credit.voided"])
        await register(caller, other)
        await make_account(caller.http)
        credit = await grant(caller.http, amount=3)
        await caller.http.post(f"/credits/{credit['id']}/void")
        await deliver(caller)
        assert await types_of(caller, hooks) == ["credit.voided"]
        assert await types_of(caller, other) == [
            "credit.granted",
            "credit.voided",
            "balance.depleted",
        ]


async def test_replay_sends_again_what_the_endpoint_takes_since_a_time(
    caller: Caller, hooks: Receiver
) -> None:
    await make_account(caller.http)
    await grant(caller.http, amount=3)  # before the endpoint: only a replay sends it
    endpoint = await register(caller, hooks, ["credit.granted"])
    await grant(caller.http, amount=4)
    await deliver(caller)
    assert len(hooks.delivered()) == 1
    replay = await caller.http.post(
        f"/webhook_endpoints/{endpoint['id']}/replay", json={"since": "2026-11-24T00:00:00Z"}
    )
    assert replay.status_code == 200, replay.text
    assert replay.json() == {"replayed": 2, "next": None}
    await deliver(caller)
    amounts = sorted(r.event["data"]["credit"]["creditAmount"] for r in hooks.received)
    assert amounts == [3, 4, 4]
    assert len(hooks.delivered()) == 3
    none = await caller.http.post(
        f"/webhook_endpoints/{endpoint['id']}/replay", json={"since": "2026-11-25T00:00:00Z"}
    )
    assert none.json() == {"replayed": 0, "next": None}
    bad = await caller.http.post(
        f"/webhook_endpoints/{endpoint['id']}/replay", json={"since": "yesterday"}
    )
    assert bad.status_code == 400


async def test_replay_pages_end_between_instants_so_none_repeats_or_is_skipped(
    db: Database, caller: Caller, hooks: Receiver
) -> None:
    endpoint = await register(caller, hooks, ["credit.granted"])
    await make_account(caller.http)
    for amount in (1, 2, 3):  # the fixed clock: three events of one instant
        await grant(caller.http, amount=amount)
    caller.app.state.clock.advance(timedelta(seconds=1))
    await grant(caller.http, amount=4)
    await deliver(caller)
    hooks.received.clear()
    async with db.read() as conn:
        mine = webhook_endpoints.c.id == endpoint["id"]
        org_seq = (await conn.execute(select(webhook_endpoints.c.org_seq).where(mine))).scalar()
    pages = []
    since: datetime | None = NOW
    while since is not None:
        replayed, since = await webhooks_service.replay(db, org_seq, endpoint["id"], since, 2)
        pages.append(replayed)
    assert pages == [3, 1]  # the limit is 2, but the first instant holds three
    await deliver(caller)
    amounts = sorted(r.event["data"]["credit"]["creditAmount"] for r in hooks.delivered())
    assert amounts == [1, 2, 3, 4]


async def test_other_organizations_and_read_only_keys(
    caller: Caller, hooks: Receiver, db: Database, clock: FixedClock
) -> None:
    endpoint = await register(caller, hooks)
    await make_account(caller.http)
    await grant(caller.http, amount=1)
    mine = await events_of(caller)
    async for stranger in _caller(db, clock, LOCAL):
        assert (await stranger.http.get(f"/webhook_endpoints/{endpoint['id']}")).status_code == 404
        assert (
            await stranger.http.get(f"/webhook_endpoints/{endpoint['id']}/deliveries")
        ).status_code == 404
        assert (
            await stranger.http.delete(f"/webhook_endpoints/{endpoint['id']}")
        ).status_code == 404
        assert (await stranger.http.get("/events")).json()["data"] == []
        after = await stranger.http.get("/events", params={"after": mine[0]["id"]})
        assert after.status_code == 404
        assert (await stranger.http.get("/accounts/acc-1/balance_alerts")).status_code == 404
    async for reader in _caller(db, clock, LOCAL, read_only=True):
        refused = await reader.http.post("/webhook_endpoints", json={"url": hooks.url})
        assert refused.status_code == 403
        assert "read-only" in refused.json()["message"]
        assert (await reader.http.put("/balance_alerts", json={})).status_code == 403
    unauthorized = await caller.http.get("/events", headers={"Authorization": "Bearer nope"})
    assert unauthorized.status_code == 401


async def test_thresholds_must_be_positive_exact_and_distinct(caller: Caller) -> None:
    await make_account(caller.http)
    for body, words in [
        ({"thresholds": [0]}, "greater than 0"),
        ({"thresholds": [-1]}, "greater than 0"),
        ({"thresholds": [1.00000000001]}, "decimal"),
        ({"thresholds": [10, 10.0]}, "must not name a threshold twice"),
        ({"thresholds": list(range(1, 12))}, "thresholds"),
        ({"thresholds": ["10"]}, "JSON number"),
        ({"limit": [1]}, "limit"),
    ]:
        response = await caller.http.put("/accounts/acc-1/balance_alerts", json=body)
        assert response.status_code == 400, (body, response.text)
        assert words in response.json()["message"], (body, response.json())
    assert (await caller.http.put("/accounts/nobody/balance_alerts", json={})).status_code == 404
    days = await caller.http.put("/balance_alerts", json={"expiringSoonDays": 0})
    assert days.status_code == 400


async def test_wallet_top_ups_and_wallet_thresholds(caller: Caller, hooks: Receiver) -> None:
    await register(caller, hooks, ["wallet.topped_up", "wallet.low", "wallet.depleted"])
    await make_account(caller.http)
    alerts = await caller.http.put(
        "/accounts/acc-1/balance_alerts", json={"walletThresholds": [50]}
    )
    assert decimal_json(alerts)["walletThresholds"] == [50]
    topped = await caller.http.post(
        "/accounts/acc-1/wallet_topup", json={"topupAmount": 100}, headers={"Idempotency-Key": "t1"}
    )
    assert topped.status_code == 200, topped.text
    again = await caller.http.post(
        "/accounts/acc-1/wallet_topup", json={"topupAmount": 100}, headers={"Idempotency-Key": "t1"}
    )
    assert again.status_code == 200  # the same top-up: nothing new
    # no credits: the wallet pays; 40 left (below 50), then 0
    assert (await apply(caller.http, "w1", [60], mode="DEBIT")).status_code == 200
    assert (await apply(caller.http, "w2", [10], mode="DEBIT")).status_code == 200
    assert (await apply(caller.http, "w3", [30], mode="HOLD")).status_code == 200
    await deliver(caller)
    assert await types_of(caller, hooks) == ["wallet.topped_up", "wallet.low", "wallet.depleted"]
    topped_up = (await of_type(caller, hooks, "wallet.topped_up"))[0]
    assert topped_up["data"]["topupAmount"] == 100
    assert topped_up["data"]["wallet"]["balance"] == 100
    assert topped_up["data"]["entry"]["transactionType"] == "CREDITED"
    assert topped_up["actor"] == caller.key_id
    low = (await of_type(caller, hooks, "wallet.low"))[0]
    assert (low["data"]["threshold"], low["data"]["wallet"]["balance"]) == (50, 40)
    depleted = (await of_type(caller, hooks, "wallet.depleted"))[0]
    assert depleted["data"]["wallet"]["balance"] == 0
    assert depleted["data"]["wallet"]["holdAmount"] == 30
    state = decimal_json(await caller.http.get("/accounts/acc-1/balance_alerts"))
    assert state["source"]["walletThresholds"] == "ACCOUNT"
    assert state["walletFired"] == [50, 0]
    assert state["fired"] == []
