"""/ingest and /ingestBatch at their edges, through a live server: duplicates and conflicting
ids, every kind of refused event named in the 207, bodies that are not a batch (400, nothing
stored), tenant isolation, read-only keys, and the largest and smallest amounts. What is
accepted is then applied and compared with tests/usage_reference.py."""

from __future__ import annotations

import asyncio
import json
import random
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any
from urllib.parse import quote

import httpx
import pytest
from sqlalchemy import select

from drawdown.api.guards import MAX_BATCH_BODY_BYTES, MAX_BODY_BYTES
from drawdown.clock import FixedClock
from drawdown.store.database import Database
from drawdown.store.tables import organizations, usage_events
from tests.conftest import ENGINE, new_key
from tests.live_server import live_server
from tests.oracle import books_problems
from tests.usage_http import (
    compare_account,
    create_meter,
    event_body,
    exact_json,
    grant,
    ingest_batch,
    ingest_one,
    make_account,
    post,
    usage,
    wait_applied,
)
from tests.usage_reference import (
    ACCEPTED,
    CONFLICT,
    COUNT,
    DUPLICATE,
    MISSING_ATTRIBUTE,
    SUM,
    TOO_COSTLY,
    UNKNOWN_ACCOUNT,
    Event,
    Meter,
    Organization,
    Rate,
)

WORKERS = 2 if ENGINE == "postgresql" else 1
LARGEST = Decimal("999999999999999999.9999999999")
SMALLEST = Decimal("0.0000000001")
READ_ONLY_WORDS = "read-only"


@pytest.fixture(scope="module")
def base_url(database_url: str) -> Iterator[str]:
    with live_server(database_url, workers=WORKERS) as server:
        yield server.base_url


@dataclass
class Tenant:
    name: str
    http: httpx.AsyncClient
    reader: httpx.AsyncClient
    org: Organization


@pytest.fixture
async def tenant(base_url: str, db: Database) -> AsyncIterator[Tenant]:
    async with new_tenant(base_url, db) as made:
        yield made


@asynccontextmanager
async def new_tenant(base_url: str, db: Database) -> AsyncIterator[Tenant]:
    """A new organization with a read-write and a read-only client, one account "acc", a
    SUM meter on "call" events' "tokens" (1 credit per 1) and a COUNT meter on "ping"."""
    name = f"usage-ingest-{uuid.uuid4().hex}"
    key = await new_key(db, org=name)
    read_key = await new_key(db, org=name, read_only=True)
    async with (
        httpx.AsyncClient(
            base_url=base_url, headers={"Authorization": f"Bearer {key}"}, timeout=60
        ) as http,
        httpx.AsyncClient(
            base_url=base_url, headers={"Authorization": f"Bearer {read_key}"}, timeout=60
        ) as reader,
    ):
        org = Organization(today=datetime.now(UTC).date())
        await make_account(http, org, "acc")
        tokens = Meter(
            "um.tokens", "Tokens", "call", SUM, "tokens", (), [Rate(Decimal(1), Decimal(1))]
        )
        pings = Meter("um.pings", "Pings", "ping", COUNT, None, (), [Rate(Decimal(2), Decimal(1))])
        await create_meter(http, org, tokens)
        await create_meter(http, org, pings)
        yield Tenant(name, http, reader, org)


def now() -> datetime:
    return datetime.now(UTC)


def yesterday() -> date:
    """Credits start yesterday, so events of the last hour are in effect even past midnight."""
    return now().date() - timedelta(days=1)


def call(event_id: str | None, tokens: str = "10", minutes: int = 30, **extra: Any) -> Event:
    return Event(
        event_id,
        extra.get("schema", "call"),
        extra.get("account", "acc"),
        extra.get("at", now() - timedelta(minutes=minutes)),
        (("tokens", Decimal(tokens), "tokens"),),
        tuple(sorted(extra.get("dimensions", {}).items())),
    )


def raw_event(event_id: str | None = "raw", **fields: Any) -> dict[str, Any]:
    """A wire event with its fields exactly as given (for values the model cannot hold)."""
    body: dict[str, Any] = {
        "schemaName": "call",
        "timestamp": (now() - timedelta(minutes=30)).isoformat(),
        "accountId": "acc",
        "attributes": [{"name": "tokens", "value": "10"}],
        "dimensions": {},
    }
    if event_id is not None:
        body["id"] = event_id
    body.update(fields)
    return body


async def stored(http: httpx.AsyncClient, event_id: str) -> bool:
    response = await http.get(f"/usage/events/{event_id}")
    assert response.status_code in (200, 404), response.text
    return response.status_code == 200


async def settle(tenant: Tenant) -> None:
    """Wait for the applier, apply the model, compare, and require verify clean."""
    await wait_applied(tenant.http, list(tenant.org.accounts))
    tenant.org.apply_pending()
    for account_id in tenant.org.accounts:
        await compare_account(tenant.http, tenant.org, account_id)


async def books_clean(db: Database, tenant: Tenant) -> None:
    assert await books_problems(db, FixedClock(now()), tenant.name) == []


# Duplicates and conflicts --------------------------------------------------------------------


async def test_the_same_event_again_is_accepted_and_counted_once(
    tenant: Tenant, db: Database
) -> None:
    await grant(tenant.http, tenant.org, "acc", Decimal(100), 1, yesterday(), None, None)
    first = call("e1", tokens="1.50", minutes=20)
    _, outcome = await ingest_one(tenant.http, tenant.org, first)
    assert outcome.kind == ACCEPTED
    # the same content written otherwise: another zone, trailing zeros, attributes reordered
    moment = first.timestamp.astimezone(datetime.fromisoformat("2026-01-01T00:00+05:30").tzinfo)
    again = event_body(first, texts={"tokens": "1.5000"})
    again["timestamp"] = moment.isoformat()
    again["attributes"].append({"name": "other", "value": "3"})
    response = await post(tenant.http, "/ingest", {"event": again})
    # an extra attribute is different content: refused
    assert response.status_code == 409, response.text
    again["attributes"].pop()
    response = await post(tenant.http, "/ingest", {"event": again})
    assert response.status_code == 202, response.text
    assert response.json()["details"] == {"accepted": 1, "duplicates": 1}
    _, outcome = await ingest_one(tenant.http, tenant.org, first)
    assert outcome.kind == DUPLICATE
    _, outcomes = await ingest_batch(tenant.http, tenant.org, [first, first, call("e2")])
    assert [o.kind for o in outcomes] == [DUPLICATE, DUPLICATE, ACCEPTED]
    await settle(tenant)
    [meter] = (await usage(tenant.http, "acc"))["meters"]
    assert (meter["events"], meter["quantity"]) == (2, Decimal("11.5"))
    await books_clean(db, tenant)


async def test_the_same_id_with_other_content_is_refused_and_changes_nothing(
    tenant: Tenant, db: Database
) -> None:
    first = call("e1", tokens="7")
    await ingest_one(tenant.http, tenant.org, first)
    await settle(tenant)
    before = await usage(tenant.http, "acc")
    variants = [
        call("e1", tokens="8", at=first.timestamp),
        call("e1", tokens="7", at=first.timestamp + timedelta(microseconds=1)),
        call("e1", tokens="7", at=first.timestamp, dimensions={"model": "large"}),
        Event("e1", "call", "acc", first.timestamp, (("tokens", Decimal(7), "kg"),)),
    ]
    for variant in variants:
        response, outcome = await ingest_one(tenant.http, tenant.org, variant)
        assert outcome.kind == CONFLICT
        assert "e1" in response.json()["message"], response.text
    _, outcomes = await ingest_batch(tenant.http, tenant.org, [call("e2"), *variants])
    assert [o.kind for o in outcomes] == [ACCEPTED] + [CONFLICT] * len(variants)
    # the same id twice in one batch: the same content counts once, other content is refused
    twice = [call("e3", at=first.timestamp), call("e3", at=first.timestamp)]
    twice.append(call("e3", tokens="99", at=first.timestamp))
    response, outcomes = await ingest_batch(tenant.http, tenant.org, twice)
    assert [o.kind for o in outcomes] == [ACCEPTED, DUPLICATE, CONFLICT]
    [refused] = response.json()["details"]["refused"]
    assert "earlier in this batch" in refused["reason"], refused
    await settle(tenant)
    after = await usage(tenant.http, "acc")
    assert after["meters"][0]["events"] == before["meters"][0]["events"] + 2
    await books_clean(db, tenant)


# Refusals ------------------------------------------------------------------------------------


async def test_every_refused_event_is_named_in_the_207(tenant: Tenant, db: Database) -> None:
    """One batch holding each kind of bad event between good ones: the 207 lists exactly the
    bad ones, by index and id, each with a reason that names what is wrong; the good ones are
    stored and applied."""
    meter = Meter(
        "um.edge",
        "Edge",
        "edge",
        SUM,
        "n",
        (),
        [Rate(Decimal("1000000000.0000000001"), Decimal(1))],
    )
    await create_meter(tenant.http, tenant.org, meter)
    moment = now()
    cases: list[tuple[Any, list[str] | None]] = [
        (raw_event("good-1"), None),
        (raw_event("unknown-acc", accountId="nobody-here"), ["nobody-here"]),
        (raw_event(None), ["id"]),
        (raw_event(""), ["id"]),
        (raw_event("slash/id"), ["id"]),
        (raw_event("x" * 513), ["id"]),
        (raw_event("exp", attributes=[{"name": "tokens", "value": "1e5"}]), ["tokens"]),
        (raw_event("word", attributes=[{"name": "tokens", "value": "ten"}]), ["tokens"]),
        (raw_event("neg", attributes=[{"name": "tokens", "value": "-1"}]), ["tokens"]),
        (raw_event("num", attributes=[{"name": "tokens", "value": 10}]), ["value"]),
        (raw_event("digits", attributes=[{"name": "tokens", "value": "1" + "0" * 18}]), ["tokens"]),
        (
            raw_event("places", attributes=[{"name": "tokens", "value": "0.00000000001"}]),
            ["tokens"],
        ),
        (
            raw_event("twice", attributes=[{"name": "tokens", "value": "1"}] * 2),
            ["attributes"],
        ),
        (
            raw_event("old", timestamp=(moment - timedelta(days=45, hours=1)).isoformat()),
            ["timestamp"],
        ),
        (
            raw_event("future", timestamp=(moment + timedelta(minutes=10)).isoformat()),
            ["timestamp"],
        ),
        (raw_event("nanos", timestamp="2026-11-24T10:00:00.1234567Z"), ["timestamp"]),
        (raw_event("no-time", timestamp="yesterday"), ["timestamp"]),
        (raw_event("missing", attributes=[]), ["um.tokens", "tokens"]),
        (
            raw_event(
                "costly",
                schemaName="edge",
                attributes=[{"name": "n", "value": "999999999.9999999999"}],
            ),
            ["um.edge"],
        ),
        (raw_event("unknown-field", extra=1), ["extra"]),
        (42, None),
        (None, None),
        (raw_event("good-2", schemaName="ping", attributes=[]), None),
    ]
    batch = [event for event, _ in cases]
    response = await post(tenant.http, "/ingestBatch", {"events": batch})
    assert response.status_code == 207, response.text
    body = response.json()
    bad = [
        i
        for i, (event, words) in enumerate(cases)
        if words is not None or not isinstance(event, dict)
    ]
    assert body["success"] is False and body["statusCode"] == 207
    assert body["message"] == f"{len(bad)} of {len(cases)} events refused"
    assert body["details"]["accepted"] == 2 and body["details"]["duplicates"] == 0
    refused = body["details"]["refused"]
    assert [r["index"] for r in refused] == bad
    for shown in refused:
        event, words = cases[shown["index"]]
        expected_id = event.get("id") if isinstance(event, dict) else None
        if expected_id in ("", "slash/id", "x" * 513):
            assert shown["id"] in (expected_id, None), shown  # an id that is no id
        else:
            assert shown["id"] == expected_id, shown
        for word in words or []:
            assert word in shown["reason"], (shown, word)
        assert len(shown["reason"]) <= 500
    for case_id in ("good-1", "good-2"):
        assert await stored(tenant.http, case_id)
    for event, words in cases:
        if words is not None and event.get("id") not in (None, "", "slash/id", "x" * 513):
            assert not await stored(tenant.http, event["id"]), event
    tenant.org.ingest(call("good-1", at=datetime.fromisoformat(batch[0]["timestamp"])), now())
    tenant.org.ingest(
        Event("good-2", "ping", "acc", datetime.fromisoformat(batch[-1]["timestamp"])), now()
    )
    await settle(tenant)
    await books_clean(db, tenant)


@pytest.mark.parametrize(
    ("fields", "status", "words"),
    [
        ({"accountId": "nobody-here"}, 404, ["nobody-here"]),
        ({"id": None}, 400, ["id"]),
        ({"attributes": [{"name": "tokens", "value": "1.5.5"}]}, 400, ["tokens"]),
        ({"attributes": [{"name": "tokens", "value": "-3"}]}, 400, ["tokens"]),
        ({"attributes": []}, 400, ["um.tokens", "tokens"]),
        ({"timestamp": "too-old"}, 400, ["timestamp"]),
        ({"timestamp": "future"}, 400, ["timestamp"]),
        ({"schemaName": ""}, 400, ["schemaName"]),
        ({"dimensions": {"model": ""}}, 400, ["dimensions"]),
        ({"dimensions": ["model"]}, 400, ["dimensions"]),
    ],
)
async def test_ingest_refuses_a_bad_event_with_a_message_that_names_it(
    tenant: Tenant, fields: dict[str, Any], status: int, words: list[str]
) -> None:
    moment = now()
    if fields.get("timestamp") == "too-old":
        fields = {"timestamp": (moment - timedelta(days=46)).isoformat()}
    elif fields.get("timestamp") == "future":
        fields = {"timestamp": (moment + timedelta(minutes=6)).isoformat()}
    event = raw_event("bad-one", **fields)
    if fields.get("id", "") is None:
        del event["id"]
    response = await post(tenant.http, "/ingest", {"event": event})
    assert response.status_code == status, response.text
    body = response.json()
    assert list(body) == ["message"] and len(body["message"]) <= 500
    for word in words:
        assert word in body["message"], (body, word)
    assert not await stored(tenant.http, "bad-one")
    assert (await usage(tenant.http, "acc"))["pending"] == 0


async def test_the_clock_window_is_45_days_back_and_5_minutes_ahead(
    tenant: Tenant, db: Database
) -> None:
    moment = now()
    inside = [
        call("old-ok", at=moment - timedelta(days=45) + timedelta(minutes=5)),
        call("soon-ok", at=moment + timedelta(minutes=4)),
    ]
    outside = [
        call("old-no", at=moment - timedelta(days=45) - timedelta(minutes=5)),
        call("soon-no", at=moment + timedelta(minutes=6)),
    ]
    _, outcomes = await ingest_batch(tenant.http, tenant.org, inside + outside)
    assert [o.accepted for o in outcomes] == [True, True, False, False]
    await settle(tenant)
    await books_clean(db, tenant)


# Bodies that are not a batch -----------------------------------------------------------------


NOT_A_BATCH = [
    "not json",
    "[]",
    "null",
    '{"events": "e1"}',
    '{"events": {}}',
    '{"events": []}',
    '{"event": {}}',
    '{"events": [], "extra": 1}',
    '{"events": [{"schemaName": "call"}], "more": true}',
]


@pytest.mark.parametrize("text", NOT_A_BATCH)
async def test_a_body_that_is_not_a_batch_is_400_and_stores_nothing(
    tenant: Tenant, text: str
) -> None:
    response = await tenant.http.post(
        "/ingestBatch", content=text, headers={"Content-Type": "application/json"}
    )
    assert response.status_code == 400, response.text
    assert list(response.json()) == ["message"]
    assert (await usage(tenant.http, "acc"))["pending"] == 0


def largest_event(event_id: str, account_id: str, at: datetime) -> dict[str, Any]:
    """An event with every string at its longest, written plainly (ASCII, compact): 10
    attributes with 50-character names and units and 29-character values, and 20 dimensions
    (as many as a meter can filter on) of 200-character names and values."""
    assert len(event_id) == 512 and len(account_id) == 50
    return {
        "schemaName": "s" * 50,
        "id": event_id,
        "timestamp": at.isoformat(timespec="microseconds"),
        "accountId": account_id,
        "attributes": [
            {
                "name": f"a{k}".ljust(50, "n"),
                "value": "999999999999999999.9999999999",
                "unit": "u" * 50,
            }
            for k in range(10)
        ],
        "dimensions": {f"d{k:02d}".ljust(200, "k"): "v" * 200 for k in range(20)},
    }


def largest_batch(prefix: str, account_id: str) -> bytes:
    moment = now() - timedelta(minutes=5)
    events = [
        largest_event(f"{prefix}-{n:04d}-".ljust(512, "i"), account_id, moment) for n in range(1000)
    ]
    return json.dumps({"events": events}, separators=(",", ":")).encode()


async def chunks(body: bytes, size: int = 65536) -> AsyncIterator[bytes]:
    for start in range(0, len(body), size):
        yield body[start : start + size]


async def test_the_largest_batch_is_taken_and_a_byte_more_is_413(tenant: Tenant) -> None:
    """1,000 of the largest events written plainly fit the /ingestBatch limit (16 MiB) and are
    stored; the same body padded to the limit exactly is taken too (all duplicates); one byte
    more is refused whole, 413, with words that say what to do, and nothing of it is stored."""
    account_id = "big-".ljust(50, "a")
    customer = {"id": "cust-big", "name": "Big", "primaryEmail": "big@example.test"}
    customer |= {"address": {}, "account": {"id": account_id, "name": "Big"}}
    assert (await post(tenant.http, "/customers", customer)).status_code == 201
    headers = {"Content-Type": "application/json"}
    body = largest_batch("big", account_id)
    assert 9 * 2**20 < len(body) <= MAX_BATCH_BODY_BYTES, len(body)
    response = await tenant.http.post("/ingestBatch", content=body, headers=headers)
    assert response.status_code == 202, response.text[:500]
    assert response.json()["details"] == {"accepted": 1000, "duplicates": 0}
    padded = body + b" " * (MAX_BATCH_BODY_BYTES - len(body))
    response = await tenant.http.post("/ingestBatch", content=padded, headers=headers)
    assert response.status_code == 202, response.text[:500]
    assert response.json()["details"] == {"accepted": 1000, "duplicates": 1000}
    over = largest_batch("over", account_id)
    over += b" " * (MAX_BATCH_BODY_BYTES + 1 - len(over))
    # streamed (chunked), so the server reads it to the byte that is one too many (a body that
    # announces its length is refused before it is sent, and the connection closed under it)
    response = await tenant.http.post("/ingestBatch", content=chunks(over), headers=headers)
    assert response.status_code == 413, response.text
    assert response.json() == {
        "message": f"the request body is larger than {MAX_BATCH_BODY_BYTES} bytes; split the "
        "batch: send fewer events per request"
    }
    assert not await stored(tenant.http, f"over-{0:04d}-".ljust(512, "i"))
    # /ingest keeps the limit of every other route
    single = exact_json({"event": raw_event("one")}).encode() + b" " * MAX_BODY_BYTES
    response = await tenant.http.post("/ingest", content=chunks(single), headers=headers)
    assert response.status_code == 413, response.text
    assert "larger than 1048576 bytes; send less per request" in response.text
    await wait_applied(tenant.http, [account_id])
    last = await tenant.http.get(f"/usage/events/{'big-0999-'.ljust(512, 'i')}")
    assert last.status_code == 200 and last.json()["status"] == "UNMETERED", last.text


async def test_more_than_1000_events_is_400_and_stores_nothing(tenant: Tenant) -> None:
    events = [raw_event(f"many-{n}") for n in range(1001)]
    response = await post(tenant.http, "/ingestBatch", {"events": events})
    assert response.status_code == 400, response.text
    assert "1000" in response.json()["message"] or "1,000" in response.json()["message"]
    assert not await stored(tenant.http, "many-0")
    assert not await stored(tenant.http, "many-1000")
    # 1000 is fine
    response = await post(tenant.http, "/ingestBatch", {"events": events[:1000]})
    assert response.status_code == 202, response.text
    assert response.json()["details"] == {"accepted": 1000, "duplicates": 0}
    await wait_applied(tenant.http, ["acc"])
    [meter] = (await usage(tenant.http, "acc"))["meters"]
    assert (meter["events"], meter["quantity"], meter["cost"]) == (1000, 10000, 10000)


@pytest.mark.parametrize(
    "text",
    ["not json", "[]", "{}", '{"events": []}', '{"event": 1}', '{"event": {}, "extra": 1}'],
)
async def test_ingest_with_a_body_that_is_not_an_event_is_400(tenant: Tenant, text: str) -> None:
    response = await tenant.http.post(
        "/ingest", content=text, headers={"Content-Type": "application/json"}
    )
    assert response.status_code == 400, response.text
    assert list(response.json()) == ["message"]
    assert (await usage(tenant.http, "acc"))["pending"] == 0


# Tenants and keys ----------------------------------------------------------------------------


async def test_another_organizations_accounts_meters_and_events_are_invisible(
    tenant: Tenant, base_url: str, db: Database
) -> None:
    async with new_tenant(base_url, db) as other:
        await grant(other.http, other.org, "acc", Decimal(50), 1, yesterday(), None, None)
        secret = Meter(
            "um.secret", "Secret", "call", COUNT, None, (), [Rate(Decimal(3), Decimal(1))]
        )
        await create_meter(other.http, other.org, secret)
        theirs = call("shared-id", tokens="5")
        await ingest_one(other.http, other.org, theirs)
        # the same account id, meter id and event id in my org are mine alone
        mine = call("shared-id", tokens="6")
        await ingest_one(tenant.http, tenant.org, mine)
        await settle(other)
        await settle(tenant)
        assert (await tenant.http.get("/usage_meters/um.secret")).status_code == 404
        for action in ("deactivate", "activate"):
            response = await tenant.http.post(f"/usage_meters/um.secret/{action}")
            assert response.status_code == 404, response.text
        listed = (await tenant.http.get("/usage_meters")).json()["data"]
        assert "um.secret" not in [m["id"] for m in listed]
        response = await tenant.http.patch(
            "/usage_meters/um.secret",
            json={
                "creditRate": {"credits": 1, "perQuantity": 1},
                "effectiveFrom": now().isoformat(),
            },
        )
        assert response.status_code == 404, response.text
        # my view of "shared-id" is my event, with my quantity
        mine_seen = (await tenant.http.get("/usage/events/shared-id")).json()
        assert mine_seen["meters"][0]["quantity"] == 6
        # an event only they have is a 404 to me
        await ingest_one(other.http, other.org, call("only-theirs"))
        await settle(other)
        assert not await stored(tenant.http, "only-theirs")
        assert (await other.http.get("/usage/events/only-theirs")).status_code == 200
        # their meter still active and untouched, their totals unchanged by mine
        assert (await other.http.get("/usage_meters/um.secret")).json()["status"] == "ACTIVE"
        await compare_account(other.http, other.org, "acc")
        await books_clean(db, other)
    await books_clean(db, tenant)


async def test_another_organizations_account_is_unknown_to_ingest_and_reads(
    tenant: Tenant, base_url: str, db: Database
) -> None:
    async with new_tenant(base_url, db) as other:
        await make_account(other.http, other.org, "their-acc")
        event = call("e-theirs", account="their-acc")
        response = await post(tenant.http, "/ingest", {"event": event_body(event)})
        assert response.status_code == 404, response.text
        response = await post(tenant.http, "/ingestBatch", {"events": [event_body(event)]})
        assert response.status_code == 207, response.text
        assert response.json()["details"]["refused"][0]["id"] == "e-theirs"
        for path in ("/accounts/their-acc/usage", "/accounts/their-acc/usage/events"):
            assert (await tenant.http.get(path)).status_code == 404
        assert (await other.http.get("/accounts/their-acc/usage")).json()["pending"] == 0
        assert not await stored(other.http, "e-theirs")


async def test_a_read_only_key_reads_usage_but_cannot_write(tenant: Tenant) -> None:
    await ingest_one(tenant.http, tenant.org, call("e1"))
    await settle(tenant)
    rate = {"creditRate": {"credits": 1, "perQuantity": 1}}
    writes = [
        (
            "POST",
            "/usage_meters",
            {"id": "um.new", "name": "n", "eventSchemaName": "x", "aggregation": "COUNT", **rate},
        ),
        ("PATCH", "/usage_meters/um.tokens", {**rate, "effectiveFrom": now().isoformat()}),
        ("POST", "/usage_meters/um.tokens/deactivate", None),
        ("POST", "/usage_meters/um.tokens/activate", None),
        ("POST", "/ingest", {"event": event_body(call("e2"))}),
        ("POST", "/ingestBatch", {"events": [event_body(call("e3"))]}),
    ]
    for method, path, body in writes:
        response = await tenant.reader.request(
            method,
            path,
            content=json.dumps(body) if body else None,
            headers={"Content-Type": "application/json"},
        )
        assert response.status_code == 403, (path, response.text)
        assert READ_ONLY_WORDS in response.json()["message"]
    for path in (
        "/usage_meters",
        "/usage_meters/um.tokens",
        "/accounts/acc/usage",
        "/accounts/acc/usage/events",
        "/usage/events/e1",
    ):
        assert (await tenant.reader.get(path)).status_code == 200, path
    assert not await stored(tenant.http, "e2") and not await stored(tenant.http, "e3")
    assert (await tenant.http.get("/usage_meters/um.new")).status_code == 404
    meter = (await tenant.http.get("/usage_meters/um.tokens")).json()
    assert meter["status"] == "ACTIVE" and len(meter["rates"]) == 1


# Amounts at their edges ----------------------------------------------------------------------


async def test_the_largest_and_smallest_amounts(tenant: Tenant, db: Database) -> None:
    """An event of 999999999999999999.9999999999 tokens at 1 per 1 is paid by a credit of that
    amount; 0.0000000001 tokens after it is uncovered; 10^18 - 10^-20 rounds to 10^18 and is
    refused at ingest, naming the meter; 10^18 - 0.1 is accepted."""
    await grant(tenant.http, tenant.org, "acc", LARGEST, 0, yesterday(), None, None)
    edge = Meter(
        "um.edge",
        "Edge",
        "edge",
        SUM,
        "n",
        (),
        [Rate(Decimal("1000000000.0000000001"), Decimal(1))],
    )
    fits = Meter("um.fits", "Fits", "fits", SUM, "n", (), [Rate(Decimal(1000000000), Decimal(1))])
    await create_meter(tenant.http, tenant.org, edge)
    await create_meter(tenant.http, tenant.org, fits)
    moment = now() - timedelta(minutes=10)
    events = [
        call("big", tokens=str(LARGEST), at=moment),
        call("tiny", tokens=str(SMALLEST), at=moment + timedelta(seconds=1)),
        Event("over", "edge", "acc", moment, (("n", Decimal("999999999.9999999999"), None),)),
        Event("under", "fits", "acc", moment, (("n", Decimal("999999999.9999999999"), None),)),
    ]
    _, outcomes = await ingest_batch(tenant.http, tenant.org, events)
    assert [o.kind for o in outcomes] == [ACCEPTED, ACCEPTED, TOO_COSTLY, ACCEPTED]
    await settle(tenant)
    big = (await tenant.http.get("/usage/events/big")).text
    assert '"cost":999999999999999999.9999999999' in big.replace(" ", "")
    totals = {m["meterId"]: m for m in (await usage(tenant.http, "acc"))["meters"]}
    assert totals["um.tokens"]["quantity"] == LARGEST + SMALLEST
    assert totals["um.tokens"]["uncovered"] == SMALLEST
    assert totals["um.fits"]["cost"] == Decimal("999999999999999999.9")
    await books_clean(db, tenant)


async def test_a_missing_attribute_is_refused_only_for_active_sum_meters(
    tenant: Tenant, db: Database
) -> None:
    bare = Event("bare", "call", "acc", now() - timedelta(minutes=3))
    _, outcome = await ingest_one(tenant.http, tenant.org, bare)
    assert (outcome.kind, outcome.meter_id) == (MISSING_ATTRIBUTE, "um.tokens")
    response = await tenant.http.post("/usage_meters/um.tokens/deactivate")
    assert response.status_code == 200
    tenant.org.set_active("um.tokens", False)
    _, outcome = await ingest_one(tenant.http, tenant.org, bare)
    assert outcome.kind == ACCEPTED
    await settle(tenant)
    assert (await tenant.http.get("/usage/events/bare")).json()["status"] == "UNMETERED"
    await books_clean(db, tenant)


# Meters --------------------------------------------------------------------------------------


def meter_json(**fields: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "id": "um.new",
        "name": "New",
        "eventSchemaName": "new_call",
        "aggregation": "SUM",
        "attribute": "tokens",
        "creditRate": {"credits": 1, "perQuantity": 1},
    }
    body.update(fields)
    return {key: value for key, value in body.items() if value is not ...}


@pytest.mark.parametrize(
    ("fields", "words"),
    [
        ({"id": "um/slash"}, ["id"]),
        ({"id": "x" * 51}, ["id"]),
        ({"id": ""}, ["id"]),
        ({"name": ...}, ["name"]),
        ({"aggregation": "MAX"}, ["aggregation"]),
        ({"attribute": ...}, ["attribute"]),
        ({"aggregation": "COUNT"}, ["attribute"]),
        ({"creditRate": {"credits": -1, "perQuantity": 1}}, ["credits"]),
        ({"creditRate": {"credits": 1, "perQuantity": 0}}, ["perQuantity"]),
        ({"creditRate": {"credits": "1", "perQuantity": 1}}, ["credits"]),
        ({"creditRate": {"credits": 1, "perQuantity": 1e-11}}, ["perQuantity"]),
        ({"creditRate": {"credits": 10**18, "perQuantity": 1}}, ["credits"]),
        ({"filters": [{"field": "model", "value": "x"}]}, ["field"]),
        ({"filters": [{"field": "dimensions.m", "value": "a"}] * 2}, ["filters"]),
        ({"effectiveFrom": "soon"}, ["effectiveFrom"]),
        ({"extra": 1}, ["extra"]),
    ],
)
async def test_a_bad_meter_is_400_and_not_created(
    tenant: Tenant, fields: dict[str, Any], words: list[str]
) -> None:
    response = await post(tenant.http, "/usage_meters", meter_json(**fields))
    assert response.status_code == 400, response.text
    message = response.json()["message"]
    for word in words:
        assert word in message, (message, word)
    listed = (await tenant.http.get("/usage_meters")).json()["data"]
    assert sorted(m["id"] for m in listed) == ["um.pings", "um.tokens"]


async def test_meter_ids_rates_and_activation(tenant: Tenant) -> None:
    """A taken id is 409; a rate change must start after the latest; deactivating twice is
    fine; the list pages oldest first."""
    response = await post(tenant.http, "/usage_meters", meter_json(id="um.tokens"))
    assert response.status_code == 409, response.text
    later = now() - timedelta(hours=1)
    change = {"creditRate": {"credits": 3, "perQuantity": 2}, "effectiveFrom": later.isoformat()}
    response = await tenant.http.patch("/usage_meters/um.tokens", json=change)
    assert response.status_code == 200, response.text
    tenant.org.change_rate("um.tokens", Rate(Decimal(3), Decimal(2), later))
    for moment in (later, later - timedelta(seconds=1)):
        again = {**change, "effectiveFrom": moment.isoformat()}
        response = await tenant.http.patch("/usage_meters/um.tokens", json=again)
        assert response.status_code == 400, response.text
        assert "effectiveFrom" in response.json()["message"]
    for body in ({"creditRate": change["creditRate"]}, {"effectiveFrom": later.isoformat()}):
        response = await tenant.http.patch("/usage_meters/um.tokens", json=body)
        assert response.status_code == 400, response.text
    for _ in range(2):
        response = await tenant.http.post("/usage_meters/um.pings/deactivate")
        assert response.status_code == 200 and response.json()["status"] == "INACTIVE"
    tenant.org.set_active("um.pings", False)
    response = await tenant.http.get("/usage_meters/um.nope")
    assert response.status_code == 404 and list(response.json()) == ["message"]
    for n in range(3):
        created = await post(tenant.http, "/usage_meters", meter_json(id=f"um.more-{n}"))
        assert created.status_code == 201, created.text
    seen: list[str] = []
    token = None
    while True:
        params = {"pageSize": "2", **({"nextToken": token} if token else {})}
        page = (await tenant.http.get("/usage_meters", params=params)).json()
        assert len(page["data"]) <= 2
        seen += [m["id"] for m in page["data"]]
        token = page.get("nextToken")
        if not token:
            break
    assert seen == ["um.tokens", "um.pings", "um.more-0", "um.more-1", "um.more-2"]
    shown = (await tenant.http.get("/usage_meters/um.tokens")).json()
    assert shown["creditRate"] == {"credits": 3, "perQuantity": 2}
    assert [r["credits"] for r in shown["rates"]] == [1, 3]
    # events before the change at the first rate, after it at the second
    _, outcomes = await ingest_batch(
        tenant.http,
        tenant.org,
        [
            call("before", tokens="4", at=later - timedelta(minutes=1)),
            call("after", tokens="4", at=later),
            Event("ping", "ping", "acc", later),
        ],
    )
    assert [o.kind for o in outcomes] == [ACCEPTED] * 3
    await settle(tenant)
    costs = {
        e: (await tenant.http.get(f"/usage/events/{e}")).json()["meters"][0]["cost"]
        for e in ("before", "after")
    }
    assert costs == {"before": 4, "after": 6}
    assert (await tenant.http.get("/usage/events/ping")).json()["status"] == "UNMETERED"


# Precedence: a retry of an accepted event is accepted --------------------------------------


async def test_a_retry_of_an_accepted_event_is_accepted_after_a_meter_starts_needing_more(
    tenant: Tenant, db: Database
) -> None:
    """An event without "tokens" is accepted while the SUM meter on "tokens" is inactive.
    The meter is then activated. The client, retrying (its first answer was lost), sends the
    identical event again: it was acknowledged before, so it must be acknowledged again (a
    duplicate, counted once), not refused for what the meters now require."""
    await tenant.http.post("/usage_meters/um.tokens/deactivate")
    tenant.org.set_active("um.tokens", False)
    bare = Event("bare", "call", "acc", now() - timedelta(minutes=3))
    _, outcome = await ingest_one(tenant.http, tenant.org, bare)
    assert outcome.kind == ACCEPTED
    await settle(tenant)
    await tenant.http.post("/usage_meters/um.tokens/activate")
    tenant.org.set_active("um.tokens", True)
    response = await post(tenant.http, "/ingest", {"event": event_body(bare)})
    assert response.status_code == 202, response.text
    assert response.json()["details"] == {"accepted": 1, "duplicates": 1}
    response = await post(tenant.http, "/ingestBatch", {"events": [event_body(bare)]})
    assert response.status_code == 202, response.text
    assert response.json()["details"] == {"accepted": 1, "duplicates": 1}
    await books_clean(db, tenant)


async def test_an_event_refused_earlier_in_a_batch_does_not_hold_its_id(
    tenant: Tenant, db: Database
) -> None:
    """The first "e1" of the batch lacks the "tokens" the active SUM meter needs and is
    refused: it was never accepted, so the second "e1" (valid) is judged on its own and
    accepted, exactly as it would be if sent in the next request."""
    moment = now() - timedelta(minutes=3)
    refused = Event("e1", "call", "acc", moment)
    valid = call("e1", tokens="5", at=moment)
    response = await post(
        tenant.http, "/ingestBatch", {"events": [event_body(refused), event_body(valid)]}
    )
    assert response.status_code == 207, response.text
    details = response.json()["details"]
    assert [r["index"] for r in details["refused"]] == [0], details
    assert details["accepted"] == 1, details
    assert await stored(tenant.http, "e1")
    await books_clean(db, tenant)


# Order and days ------------------------------------------------------------------------------


async def test_events_of_one_instant_apply_in_id_byte_order(tenant: Tenant, db: Database) -> None:
    """Four pings at one instant (written in three zones) and a credit that pays one: the
    first in (timestamp, id) byte order, "B-up", takes it, whatever a locale would sort first;
    the list shows them newest first, ties by id descending."""
    await grant(tenant.http, tenant.org, "acc", Decimal(2), 1, yesterday(), None, None)
    moment = now() - timedelta(minutes=2)
    ids = ["a-low", "_x", "Z9", "B-up"]
    pings = [Event(i, "ping", "acc", moment) for i in ids]
    zones = ["+05:30", "-01:00", "Z", "+00:00"]
    bodies = []
    for ping, zone in zip(pings, zones, strict=True):
        body = event_body(ping)
        offset = datetime.fromisoformat(f"2026-01-01T00:00:00{zone.replace('Z', '+00:00')}")
        body["timestamp"] = moment.astimezone(offset.tzinfo).isoformat()
        bodies.append(body)
    response = await post(tenant.http, "/ingestBatch", {"events": bodies})
    assert response.status_code == 202, response.text
    for ping in pings:
        tenant.org.ingest(ping, now())
    await settle(tenant)
    assert tenant.org.applied["acc"] == ["B-up", "Z9", "_x", "a-low"]
    paid = (await tenant.http.get("/usage/events/B-up")).json()["meters"][0]["allocations"]
    assert [a["amount"] for a in paid] == [2]
    await books_clean(db, tenant)


async def test_a_credit_pays_events_of_the_utc_days_it_is_in_effect(
    tenant: Tenant, db: Database
) -> None:
    """A credit from today pays an event at today 00:00:30 UTC written as yesterday 23:00:30
    at -01:00, and not one at yesterday 23:59:30 UTC written as today 00:59:30 at +01:00."""
    moment = now()
    today = moment.date()
    first_second = datetime(today.year, today.month, today.day, tzinfo=UTC)
    if moment - first_second < timedelta(minutes=2):
        pytest.skip("too close to midnight UTC for events on both sides of it")
    await grant(tenant.http, tenant.org, "acc", Decimal(100), 1, today, None, None)
    west = datetime.fromisoformat("2026-01-01T00:00:00-01:00").tzinfo
    east = datetime.fromisoformat("2026-01-01T00:00:00+01:00").tzinfo
    after = Event("after", "ping", "acc", (first_second + timedelta(seconds=30)).astimezone(west))
    before = Event("before", "ping", "acc", (first_second - timedelta(seconds=30)).astimezone(east))
    assert after.timestamp.date() < today and before.timestamp.date() == today  # local dates
    _, outcomes = await ingest_batch(tenant.http, tenant.org, [after, before])
    assert [o.kind for o in outcomes] == [ACCEPTED, ACCEPTED]
    await settle(tenant)
    shown = {
        e: (await tenant.http.get(f"/usage/events/{e}")).json()["meters"][0]
        for e in ("after", "before")
    }
    assert [a["amount"] for a in shown["after"]["allocations"]] == [2]
    assert shown["before"]["allocations"] == [] and shown["before"]["uncovered"] == 2
    await books_clean(db, tenant)


# Racing and long ids -------------------------------------------------------------------------


async def test_the_same_event_sent_at_once_many_times_is_stored_once(
    tenant: Tenant, db: Database
) -> None:
    """Twenty identical /ingest calls at once (across the server's workers on PostgreSQL):
    all 202, exactly one not a duplicate; then twelve calls for one id with twelve contents:
    exactly one 202, the others 409."""
    await grant(tenant.http, tenant.org, "acc", Decimal(1000), 1, yesterday(), None, None)
    same = call("race", tokens="3")
    body = exact_json({"event": event_body(same)})
    headers = {"Content-Type": "application/json"}
    answers = await asyncio.gather(
        *(tenant.http.post("/ingest", content=body, headers=headers) for _ in range(20))
    )
    assert [a.status_code for a in answers] == [202] * 20, [a.text for a in answers]
    firsts = [a for a in answers if a.json()["details"]["duplicates"] == 0]
    assert len(firsts) == 1, [a.text for a in answers]
    tenant.org.ingest(same, now())
    moment = now() - timedelta(minutes=1)
    rivals = [call("rival", tokens=str(n), at=moment) for n in range(1, 13)]
    answers = await asyncio.gather(
        *(post(tenant.http, "/ingest", {"event": event_body(r)}) for r in rivals)
    )
    statuses = sorted(a.status_code for a in answers)
    assert statuses == [202] + [409] * 11, [a.text for a in answers]
    winner = next(r for r, a in zip(rivals, answers, strict=True) if a.status_code == 202)
    tenant.org.ingest(winner, now())
    await settle(tenant)
    await books_clean(db, tenant)


async def test_ids_of_512_characters_and_beyond_ascii(tenant: Tenant, db: Database) -> None:
    ids = ["x" * 512, "évt-☃-東京-🚀", "a.b_c-d:e@f+g=h~i", "1"]
    events = [call(i, tokens="1") for i in ids]
    _, outcomes = await ingest_batch(tenant.http, tenant.org, events)
    assert [o.kind for o in outcomes] == [ACCEPTED] * len(ids)
    await settle(tenant)
    for event_id in ids:
        response = await tenant.http.get(f"/usage/events/{quote(event_id, safe='')}")
        assert response.status_code == 200, response.text
        assert response.json()["id"] == event_id
    await books_clean(db, tenant)


# A long burn ---------------------------------------------------------------------------------


async def test_a_long_burn_on_one_account_keeps_timestamp_order(
    tenant: Tenant, db: Database
) -> None:
    """5,000 pings on one account in five batches of 1,000 sent back to back, each batch later
    in time than the one before but shuffled inside, so that however the applier cuts them
    (by arrival, up to its batch size) the (timestamp, id) order is one order. The credit of
    5001 pays 2,500 pings of 2 in full and half of the next: every event's allocation and
    uncovered amount is the model's."""
    await grant(tenant.http, tenant.org, "acc", Decimal(5001), 1, yesterday(), None, None)
    shuffler = random.Random(5)
    start = now() - timedelta(hours=6)
    batches = []
    for k in range(5):
        seconds = list(range(3600))
        shuffler.shuffle(seconds)
        batch = [
            Event(f"p-{k}-{n:04d}", "ping", "acc", start + timedelta(hours=k, seconds=s))
            for n, s in enumerate(seconds[:1000])
        ]
        batches.append(batch)
    answers = [
        await post(tenant.http, "/ingestBatch", {"events": [event_body(e) for e in batch]})
        for batch in batches
    ]
    assert [a.status_code for a in answers] == [202] * 5, [a.text[:300] for a in answers]
    for batch in batches:
        tenant.org.ingest_batch(batch, now())
    await wait_applied(tenant.http, ["acc"], timeout_s=120)
    tenant.org.apply_pending()
    [totals] = (await usage(tenant.http, "acc"))["meters"]
    assert (totals["events"], totals["cost"], totals["paidByCredits"], totals["uncovered"]) == (
        5000,
        10000,
        5001,
        4999,
    )
    split = tenant.org.applied["acc"][2500]
    assert [a["amount"] for a in tenant.org.event_view(split)["meters"][0]["allocations"]] == [1]  # type: ignore[index]
    await compare_account(tenant.http, tenant.org, "acc")
    await books_clean(db, tenant)


async def test_a_timestamp_without_an_offset_is_utc(tenant: Tenant, db: Database) -> None:
    moment = (now() - timedelta(minutes=7)).replace(microsecond=0)
    naive = event_body(call("naive", at=moment))
    naive["timestamp"] = moment.replace(tzinfo=None).isoformat()
    response = await post(tenant.http, "/ingest", {"event": naive})
    assert response.status_code == 202, response.text
    assert tenant.org.ingest(call("naive", at=moment), now()).kind == ACCEPTED
    # the same instant with Z is the same event
    _, outcome = await ingest_one(tenant.http, tenant.org, call("naive", at=moment))
    assert outcome.kind == DUPLICATE
    await settle(tenant)
    shown = (await tenant.http.get("/usage/events/naive")).json()
    assert shown["timestamp"] == moment.isoformat().replace("+00:00", "Z")
    await books_clean(db, tenant)


async def test_a_batch_arrives_whole_even_when_an_id_repeats_after_a_refusal(
    tenant: Tenant, db: Database
) -> None:
    """One batch: "x" lacking tokens (refused), "x" with 2 tokens two hours ago, "y" a ping
    (2) an hour ago; a credit of 3. The batch is one arrival, so "x" (earlier) is applied first
    and paid in full, and "y" gets the 1 left. Ten accounts, so that a batch stored in two
    commits (the applier taking "y" before "x" arrives) shows."""
    for n in range(10):
        account_id = f"whole-{n}"
        await make_account(tenant.http, tenant.org, account_id)
        await grant(tenant.http, tenant.org, account_id, Decimal(3), 1, yesterday(), None, None)
    moment = now()
    for n in range(10):
        account_id = f"whole-{n}"
        batch = [
            Event(f"x-{n}", "call", account_id, moment - timedelta(hours=2)),
            Event(
                f"x-{n}",
                "call",
                account_id,
                moment - timedelta(hours=2),
                (("tokens", Decimal(2), None),),
            ),
            Event(f"y-{n}", "ping", account_id, moment - timedelta(hours=1)),
        ]
        _, outcomes = await ingest_batch(tenant.http, tenant.org, batch)
        assert [o.accepted for o in outcomes] == [False, True, True]
        # one transaction stored both: they were received at the one instant it read
        received = await received_at(db, tenant.name, [f"x-{n}", f"y-{n}"])
        assert len(received) == 2 and len(set(received.values())) == 1, received
    await settle(tenant)
    for n in range(10):
        paid = tenant.org.event_view(f"x-{n}")["meters"][0]["allocations"]  # type: ignore[index]
        assert [a["amount"] for a in paid] == [2]
    await books_clean(db, tenant)


async def received_at(db: Database, org_name: str, event_ids: list[str]) -> dict[str, datetime]:
    """When the server received each of these stored events (the instant its transaction
    read)."""
    query = (
        select(usage_events.c.id, usage_events.c.received_at)
        .join(organizations, organizations.c.seq == usage_events.c.org_seq)
        .where(organizations.c.name == org_name, usage_events.c.id.in_(event_ids))
    )
    async with db.read() as conn:
        return {row.id: row.received_at for row in await conn.execute(query)}


async def test_an_occurrence_refused_for_what_it_says_frees_the_id_for_the_next(
    tenant: Tenant, db: Database
) -> None:
    """One id five times in a batch: too old, a value that is not a decimal, lacking the
    attribute the SUM meter needs (each refused for what it says, holding no id), then valid
    (accepted) and the same again (a duplicate). Stored once, with the valid content, in the
    same commit as the batch's other event."""
    moment = now() - timedelta(minutes=3)
    valid = call("x", tokens="5", at=moment)
    bodies = [
        {**event_body(valid), "timestamp": (now() - timedelta(days=46)).isoformat()},
        {**event_body(valid), "attributes": [{"name": "tokens", "value": "1e3"}]},
        event_body(Event("x", "call", "acc", moment)),
        event_body(valid),
        event_body(valid),
        event_body(call("other", at=moment)),
    ]
    response = await post(tenant.http, "/ingestBatch", {"events": bodies})
    assert response.status_code == 207, response.text
    details = response.json()["details"]
    assert (details["accepted"], details["duplicates"]) == (3, 1), details
    reasons = [(r["index"], r["reason"].split(" ")[0]) for r in details["refused"]]
    assert reasons == [(0, "timestamp:"), (1, "attributes[0].value:"), (2, "attributes:")], details
    view = await tenant.http.get("/usage/events/x")
    assert view.status_code == 200, view.text
    assert view.json()["timestamp"].startswith(moment.strftime("%Y-%m-%dT%H:%M:%S")), view.text
    received = await received_at(db, tenant.name, ["x", "other"])
    assert len(received) == 2 and len(set(received.values())) == 1, received
    tenant.org.ingest_batch([valid, call("other", at=moment)], now())
    await settle(tenant)
    assert (await usage(tenant.http, "acc"))["meters"][0]["quantity"] == 15
    await books_clean(db, tenant)


async def test_an_occurrence_the_store_refuses_holds_the_id_for_the_batch(
    tenant: Tenant, db: Database
) -> None:
    """The first occurrence that passes the checks on the event alone takes the id for the
    batch, even when the store then refuses it (an unknown account, a conflict with a stored
    event): a later one with the same content gets the same answer, one with other content is
    refused as differing from it. Nothing is stored for it; the stored event stays as it was."""
    moment = now() - timedelta(minutes=3)
    kept = call("kept", tokens="7", at=moment)
    await ingest_one(tenant.http, tenant.org, kept)
    nobody = call("lost", at=moment, account="nobody")
    other = call("kept", tokens="8", at=moment)
    batch = [nobody, nobody, call("lost", at=moment), other, kept, other]
    response, outcomes = await ingest_batch(tenant.http, tenant.org, batch)
    assert [o.kind for o in outcomes] == [
        UNKNOWN_ACCOUNT,
        UNKNOWN_ACCOUNT,
        CONFLICT,
        CONFLICT,
        CONFLICT,
        CONFLICT,
    ]
    reasons = [r["reason"] for r in response.json()["details"]["refused"]]
    unknown = "accountId: account 'nobody' was not found"
    assert reasons[:2] == [unknown, unknown], reasons
    assert "'lost' appears earlier in this batch with different content" in reasons[2], reasons
    assert "'kept' was accepted before with different content" in reasons[3], reasons
    assert "'kept' appears earlier in this batch with different content" in reasons[4], reasons
    assert reasons[5] == reasons[3], reasons
    statuses = [o.status for o in outcomes]
    assert statuses == [404, 404, 409, 409, 409, 409], statuses
    assert not await stored(tenant.http, "lost")
    await settle(tenant)
    assert (await usage(tenant.http, "acc"))["meters"][0]["quantity"] == 7
    await books_clean(db, tenant)
