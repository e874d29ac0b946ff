"""The usage API in-process (docs/usage.md): meters, /ingest and /ingestBatch with every kind of
refusal, the applier (drained by hand: ASGITransport runs no lifespan), the reads, and verify
clean after. Expected amounts are worked out here from the rules, by hand."""

import asyncio
import contextlib
from collections.abc import AsyncIterator
from datetime import timedelta
from decimal import Decimal
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from drawdown.api.app import create_app
from drawdown.clock import FixedClock
from drawdown.services.applier import Applier
from drawdown.store.database import Database
from tests.conftest import NOW, new_key
from tests.helpers import decimal_json, grant, make_account
from tests.oracle import assert_books_balance

D = Decimal
AT = "2026-11-24T11:00:00Z"


@pytest.fixture
async def app(db: Database, clock: FixedClock) -> FastAPI:
    return create_app(db, clock)


@pytest.fixture
async def client(app: FastAPI, api_key: str) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app),
        base_url="http://drawdown.test",
        headers={"Authorization": f"Bearer {api_key}"},
    ) as http:
        yield http


async def drain(app: FastAPI) -> int:
    applier: Applier = app.state.applier
    return await applier.drain()


def meter_body(meter_id: str = "um.tokens", **extra: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "id": meter_id,
        "name": "LLM tokens",
        "eventSchemaName": "llm_call",
        "aggregation": "SUM",
        "attribute": "tokens",
        "filters": [{"field": "dimensions.model", "value": "large"}],
        "creditRate": {"credits": 2, "perQuantity": 1000},
    }
    body.update(extra)
    return body


def event(
    event_id: str, tokens: str | None = "1000", account: str = "acc-1", **extra: Any
) -> dict[str, Any]:
    body: dict[str, Any] = {
        "schemaName": "llm_call",
        "id": event_id,
        "timestamp": AT,
        "accountId": account,
        "attributes": [] if tokens is None else [{"name": "tokens", "value": tokens}],
        "dimensions": {"model": "large"},
    }
    body.update(extra)
    return body


async def create_meter(client: httpx.AsyncClient, **extra: Any) -> dict[str, Any]:
    response = await client.post("/usage_meters", json=meter_body(**extra))
    assert response.status_code == 201, response.text
    return dict(response.json())


async def ingest_batch(client: httpx.AsyncClient, *events: dict[str, Any]) -> httpx.Response:
    return await client.post("/ingestBatch", json={"events": list(events)})


# -- meters ---------------------------------------------------------------------------------


async def test_a_meter_is_created_listed_re_rated_and_switched(client: httpx.AsyncClient) -> None:
    created = await create_meter(client, creditRate={"credits": 0.002, "perQuantity": 1000})
    assert created == {
        "id": "um.tokens",
        "name": "LLM tokens",
        "eventSchemaName": "llm_call",
        "aggregation": "SUM",
        "attribute": "tokens",
        "filters": [{"field": "dimensions.model", "value": "large"}],
        "status": "ACTIVE",
        "creditRate": {"credits": 0.002, "perQuantity": 1000},
        "rates": [{"credits": 0.002, "perQuantity": 1000, "effectiveFrom": None}],
        "createdAt": "2026-11-24T12:00:00Z",
        "updatedAt": "2026-11-24T12:00:00Z",
    }
    assert '"credits":0.002' in (await client.get("/usage_meters/um.tokens")).text

    patched = await client.patch(
        "/usage_meters/um.tokens",
        json={"creditRate": {"credits": 3, "perQuantity": 1}, "effectiveFrom": AT},
    )
    assert patched.status_code == 200, patched.text
    assert patched.json()["creditRate"] == {"credits": 3, "perQuantity": 1}
    assert [r["effectiveFrom"] for r in patched.json()["rates"]] == [None, AT]
    earlier = await client.patch(
        "/usage_meters/um.tokens",
        json={"creditRate": {"credits": 4, "perQuantity": 1}, "effectiveFrom": AT},
    )
    assert earlier.status_code == 400 and "later than the latest rate" in earlier.json()["message"]

    off = await client.post("/usage_meters/um.tokens/deactivate")
    assert off.status_code == 200 and off.json()["status"] == "INACTIVE"
    again = await client.post("/usage_meters/um.tokens/deactivate")
    assert again.json() == off.json()
    on = await client.post("/usage_meters/um.tokens/activate")
    assert on.json()["status"] == "ACTIVE"

    await create_meter(client, meter_id="um.calls", aggregation="COUNT", attribute=None)
    first = await client.get("/usage_meters", params={"pageSize": 1})
    assert [m["id"] for m in first.json()["data"]] == ["um.tokens"]
    second = await client.get(
        "/usage_meters", params={"pageSize": 1, "nextToken": first.json()["nextToken"]}
    )
    assert [m["id"] for m in second.json()["data"]] == ["um.calls"]
    assert "nextToken" not in second.json()


@pytest.mark.parametrize(
    ("change", "words"),
    [
        ({"attribute": None}, "attribute: is required for a SUM meter"),
        ({"aggregation": "COUNT"}, "attribute: must be absent for a COUNT meter"),
        ({"id": "um tokens"}, "id"),
        ({"id": "x" * 51}, "id"),
        ({"creditRate": {"credits": -1, "perQuantity": 1}}, "credits"),
        ({"creditRate": {"credits": 1, "perQuantity": 0}}, "perQuantity"),
        ({"creditRate": {"credits": 1, "perQuantity": 1e-11}}, "perQuantity"),
        ({"filters": [{"field": "model", "value": "x"}]}, "field"),
        (
            {
                "filters": [
                    {"field": "dimensions.a", "value": "x"},
                    {"field": "dimensions.a", "value": "y"},
                ]
            },
            "filters[1].field: 'dimensions.a' appears twice; each dimension may be filtered once",
        ),
        ({"effectiveFrom": "soon"}, "effectiveFrom"),
        ({"unknown": 1}, "unknown"),
    ],
)
async def test_a_bad_meter_is_refused_with_a_reason(
    client: httpx.AsyncClient, change: dict[str, Any], words: str
) -> None:
    response = await client.post("/usage_meters", json=meter_body(**change))
    assert response.status_code == 400, response.text
    assert words in response.json()["message"]
    assert (await client.get("/usage_meters")).json()["data"] == []


async def test_meter_ids_are_per_organization_and_taken_once(
    client: httpx.AsyncClient, db: Database, app: FastAPI
) -> None:
    await create_meter(client)
    taken = await client.post("/usage_meters", json=meter_body())
    assert taken.status_code == 409 and "already exists" in taken.json()["message"]
    other = {"Authorization": f"Bearer {await new_key(db)}"}
    assert (await client.get("/usage_meters/um.tokens", headers=other)).status_code == 404
    assert (await client.post("/usage_meters", json=meter_body(), headers=other)).status_code == 201
    reader = {"Authorization": f"Bearer {await new_key(db, read_only=True)}"}
    refused = await client.post("/usage_meters", json=meter_body("um.x"), headers=reader)
    assert refused.status_code == 403
    assert (
        await client.post("/ingest", json={"event": event("e")}, headers=reader)
    ).status_code == 403
    assert (await client.get("/usage_meters/um.none")).status_code == 404


# -- ingestion ----------------------------------------------------------------------------------


async def test_an_event_is_accepted_once_and_a_conflicting_resend_refused(
    client: httpx.AsyncClient,
) -> None:
    await make_account(client)
    first = await client.post("/ingest", json={"event": event("e-1")})
    assert first.status_code == 202, first.text
    assert first.json() == {
        "success": True,
        "statusCode": 202,
        "message": "1 event accepted",
        "details": {"accepted": 1, "duplicates": 0},
    }
    # the same content written otherwise: another offset, another attribute order, 1000.0
    same = event("e-1", "1000.00", timestamp="2026-11-24T12:00:00+01:00")
    again = await client.post("/ingest", json={"event": same})
    assert again.status_code == 202 and again.json()["details"] == {"accepted": 1, "duplicates": 1}
    conflict = await client.post("/ingest", json={"event": event("e-1", "1001")})
    assert conflict.status_code == 409
    assert "accepted before with different content" in conflict.json()["message"]


@pytest.mark.parametrize(
    ("change", "status", "words"),
    [
        ({"id": None}, 400, "id: is required"),
        (
            {"id": "a/b"},
            400,
            "id: must be 1 to 512 visible characters without '/', whitespace or control "
            "characters, not 'a/b'",
        ),
        ({"id": "x" * 513}, 400, f"not '{'x' * 37}'... (513 characters)"),
        ({"accountId": "nobody"}, 404, "account 'nobody' was not found"),
        ({"timestamp": "2026-10-09T11:59:59Z"}, 400, "more than 45 days old"),
        ({"timestamp": "2026-11-24T12:05:01Z"}, 400, "more than 5 minutes in the future"),
        (
            {"timestamp": "noon"},
            400,
            "timestamp: must be an ISO 8601 time such as 2026-11-25T10:00:00Z, not 'noon'",
        ),
        (
            {"timestamp": "2026-11-24T12:00:00.1234567Z"},
            400,
            "timestamp: at most 6 decimals of a second (microseconds) are kept, not "
            "'2026-11-24T12:00:00.1234567Z'",
        ),
        (
            {"attributes": [{"name": "tokens", "value": "1e3"}]},
            400,
            "attributes[0].value: the value of 'tokens' must be a non-negative decimal number "
            """written as digits with an optional fraction, such as "1520" or "0.25", not """
            "'1e3'",
        ),
        ({"attributes": [{"name": "tokens", "value": "-1"}]}, 400, "non-negative"),
        (
            {"attributes": [{"name": "tokens", "value": "0.00000000001"}]},
            400,
            "attributes[0].value: the value of 'tokens' must have at most 10 digits after the "
            "decimal point, not '0.00000000001'",
        ),
        (
            {"attributes": [{"name": "tokens", "value": "1"}, {"name": "tokens", "value": "2"}]},
            400,
            "attributes[1].name: 'tokens' appears twice; each attribute name may appear once",
        ),
        ({"attributes": [{"name": "tokens", "value": 5}]}, 400, "attributes[0].value"),
        ({"attributes": []}, 400, "meter 'um.tokens' sums attribute 'tokens'"),
        ({"dimensions": {"model": 1}}, 400, "dimensions"),
        ({"colour": "red"}, 400, "colour: is not a field"),
        ({"schemaName": ""}, 400, "schemaName"),
    ],
)
async def test_a_bad_event_is_refused_and_nothing_stored(
    client: httpx.AsyncClient, app: FastAPI, change: dict[str, Any], status: int, words: str
) -> None:
    await make_account(client)
    await create_meter(client)
    body = event("e-bad")
    body.update(change)
    body = {k: v for k, v in body.items() if v is not None}
    response = await client.post("/ingest", json={"event": body})
    assert response.status_code == status, response.text
    assert words in response.json()["message"]
    assert (await client.get("/accounts/acc-1/usage")).json()["pending"] == 0


@pytest.mark.parametrize(
    ("written", "words"),
    [
        (
            '"dimensions":{"model":"large","model":"small"}',
            "dimensions: 'model' appears twice; write each name once",
        ),
        (
            '"dimensions":{},"dimensions":{}',
            "dimensions: appears twice in the event; write each field once",
        ),
        (
            '"attributes":[{"name":"tokens","value":"1","value":"2"}]',
            "attributes[0]: 'value' appears twice; write each name once",
        ),
    ],
)
async def test_a_key_written_twice_is_named_with_where_it_is(
    client: httpx.AsyncClient, written: str, words: str
) -> None:
    await make_account(client)
    fields = f'"schemaName":"llm_call","id":"e-twice","timestamp":"{AT}","accountId":"acc-1"'
    for path, body in (
        ("/ingest", f'{{"event":{{{fields},{written}}}}}'),
        ("/ingestBatch", f'{{"events":[{{{fields},{written}}}]}}'),
    ):
        response = await client.post(
            path, content=body, headers={"Content-Type": "application/json"}
        )
        if path == "/ingest":  # a single event's fields are named within the body
            assert response.json() == {"message": f"event.{words}"}, response.text
        else:
            assert response.json()["details"]["refused"][0]["reason"] == words, response.text
    assert (await client.get("/accounts/acc-1/usage")).json()["pending"] == 0


async def test_a_batch_names_each_refused_event_and_keeps_the_others(
    client: httpx.AsyncClient,
) -> None:
    await make_account(client)
    await create_meter(client)
    response = await ingest_batch(
        client,
        event("e-1"),
        event("e-2", account="nobody"),
        event("e-1"),  # the same again: a duplicate
        event("e-1", "7"),  # the same id, other content
        {"id": "e-5", "schemaName": "llm_call"},
        event("e-6", None),  # the SUM meter's attribute missing
        7,
    )
    assert response.status_code == 207, response.text
    body = response.json()
    assert body["success"] is False and body["statusCode"] == 207
    assert body["message"] == "5 of 7 events refused"
    assert body["details"]["accepted"] == 2 and body["details"]["duplicates"] == 1
    refused = body["details"]["refused"]
    assert [(r["index"], r["id"]) for r in refused] == [
        (1, "e-2"),
        (3, "e-1"),
        (4, "e-5"),
        (5, "e-6"),
        (6, None),
    ]
    assert "account 'nobody' was not found" in refused[0]["reason"]
    assert "earlier in this batch with different content" in refused[1]["reason"]
    assert "is required" in refused[2]["reason"]
    assert "sums attribute 'tokens'" in refused[3]["reason"]
    assert (await client.get("/accounts/acc-1/usage")).json()["pending"] == 1

    whole = await ingest_batch(client, event("e-1"), event("e-7"))
    assert whole.status_code == 202
    assert whole.json()["details"] == {"accepted": 2, "duplicates": 1}
    assert whole.json()["message"] == "2 events accepted"


@pytest.mark.parametrize(
    "text",
    [
        '{"events": []}',
        '{"events": {}}',
        '{"events": [' + ",".join(["{}"] * 1001) + "]}",
        '{"event": []}',
        '{"events": [], "more": 1}',
        '{"events": [{}], "events": [{}]}',
        "[]",
        "not json",
    ],
)
async def test_a_body_that_is_not_a_batch_is_refused_whole(
    client: httpx.AsyncClient, text: str
) -> None:
    response = await client.post(
        "/ingestBatch", content=text, headers={"Content-Type": "application/json"}
    )
    assert response.status_code == 400, response.text
    assert set(response.json()) == {"message"}


# -- applying and reading -------------------------------------------------------------------


async def test_events_draw_credits_in_order_and_the_reads_show_it_exactly(
    client: httpx.AsyncClient, app: FastAPI, db: Database, clock: FixedClock, org_name: str
) -> None:
    await make_account(client)
    await create_meter(client, creditRate={"credits": 1, "perQuantity": 3})
    await create_meter(
        client,
        meter_id="um.calls",
        aggregation="COUNT",
        attribute=None,
        filters=[],
        creditRate={"credits": 0.5, "perQuantity": 1},
    )
    second = await grant(client, amount=1, priority=2)
    first = await grant(client, amount=0.5, priority=1, applicableEntityIds=["um.calls"])
    response = await ingest_batch(
        client,
        event("e-1", "1"),  # 1/3 on tokens, 0.5 on calls
        event("e-2", "2", timestamp="2026-11-24T11:30:00Z"),  # 2/3 and 0.5
        event("e-3", "3", schemaName="other"),  # unmetered
    )
    assert response.status_code == 202
    assert (await client.get("/accounts/acc-1/usage")).json()["pending"] == 3
    pending = (await client.get("/usage/events/e-1")).json()
    assert pending == {
        "id": "e-1",
        "accountId": "acc-1",
        "timestamp": AT,
        "status": "PENDING",
        "meters": [],
    }
    assert await drain(app) >= 3  # other tests of the session may have left events too

    one = decimal_json(await client.get("/usage/events/e-1"))
    assert one["status"] == "APPLIED"
    calls, tokens = one["meters"]
    # e-1 applies first (11:00): calls 0.5 from the calls-only credit, tokens 1/3 from the other
    assert calls == {
        "meterId": "um.calls",
        "quantity": 1,
        "rate": {"credits": D("0.5"), "perQuantity": 1},
        "cost": D("0.5"),
        "allocations": [{"creditId": first["id"], "amount": D("0.5")}],
        "uncovered": 0,
    }
    assert tokens == {
        "meterId": "um.tokens",
        "quantity": 1,
        "rate": {"credits": 1, "perQuantity": 3},
        "exactCost": D("0." + "3" * 40),
        "cost": D("0.3333333333"),
        "allocations": [{"creditId": second["id"], "amount": D("0.3333333333")}],
        "uncovered": 0,
    }
    two = decimal_json(await client.get("/usage/events/e-2"))
    calls, tokens = two["meters"]
    # the calls-only credit is spent: 0.5 of the other credit pays calls, then 0.1666666667
    # is left of it for 0.6666666667 of tokens
    assert calls["allocations"] == [{"creditId": second["id"], "amount": D("0.5")}]
    assert tokens["cost"] == D("0.6666666667")
    assert tokens["allocations"] == [{"creditId": second["id"], "amount": D("0.1666666667")}]
    assert tokens["uncovered"] == D("0.5")
    assert (await client.get("/usage/events/e-3")).json()["status"] == "UNMETERED"

    usage = decimal_json(await client.get("/accounts/acc-1/usage"))
    assert usage == {
        "accountId": "acc-1",
        "appliedThrough": "2026-11-24T11:30:00Z",
        "pending": 0,
        "meters": [
            {
                "meterId": "um.calls",
                "quantity": 2,
                "cost": 1,
                "paidByCredits": 1,
                "paidByWallet": 0,
                "uncovered": 0,
                "events": 2,
            },
            {
                "meterId": "um.tokens",
                "quantity": 3,
                "cost": 1,
                "paidByCredits": D("0.5"),
                "paidByWallet": 0,
                "uncovered": D("0.5"),
                "events": 2,
            },
        ],
    }
    balance = decimal_json(await client.get("/accounts/acc-1/credit_balance"))
    assert balance["availableBalance"] == 0
    details = decimal_json(await client.get(f"/credits/{second['id']}"))
    assert details["status"] == "CONSUMED"
    debits = [
        (t["amount"], t["entityId"], t["invoiceId"])
        for t in details["transactions"]
        if t["transactionType"] == "DEBITED"
    ]
    assert sorted(debits) == [(D("0.5"), "um.calls", None), (D("0.5"), "um.tokens", None)]
    await assert_books_balance(db, clock, org_name)

    ranged = decimal_json(
        await client.get("/accounts/acc-1/usage", params={"from": "2026-11-24T11:15:00Z"})
    )
    assert [(m["meterId"], m["cost"], m["events"]) for m in ranged["meters"]] == [
        ("um.calls", D("0.5"), 1),
        ("um.tokens", D("0.6666666667"), 1),
    ]


async def test_the_events_list_is_newest_first_paged_and_filtered(
    client: httpx.AsyncClient, app: FastAPI
) -> None:
    await make_account(client)
    await create_meter(client, meter_id="um.calls", aggregation="COUNT", attribute=None)
    at = NOW - timedelta(hours=1)
    events = [
        event(
            f"e-{n}",
            timestamp=(at + timedelta(minutes=n % 3)).isoformat(),
            schemaName="llm_call" if n % 2 else "other",
        )
        for n in range(7)
    ]
    assert (await ingest_batch(client, *events)).status_code == 202
    await drain(app)
    seen: list[str] = []
    params: dict[str, Any] = {"pageSize": 2}
    while True:
        page = (await client.get("/accounts/acc-1/usage/events", params=params)).json()
        seen += [e["id"] for e in page["data"]]
        if "nextToken" not in page:
            break
        params["nextToken"] = page["nextToken"]
    expected = sorted(events, key=lambda e: (e["timestamp"], e["id"]), reverse=True)
    assert seen == [e["id"] for e in expected]
    metered = (
        await client.get("/accounts/acc-1/usage/events", params={"meterId": "um.calls"})
    ).json()
    assert sorted(e["id"] for e in metered["data"]) == ["e-1", "e-3", "e-5"]
    bad = await client.get("/accounts/acc-1/usage/events", params={"nextToken": "nope"})
    assert bad.status_code == 400
    assert (await client.get("/accounts/nobody/usage/events")).status_code == 404
    assert (await client.get("/usage/events/nothing")).status_code == 404
    backwards = await client.get(
        "/accounts/acc-1/usage", params={"from": AT, "to": "2026-11-24T10:00:00Z"}
    )
    assert backwards.status_code == 400


async def test_a_meter_made_inactive_matches_nothing_while_it_is(
    client: httpx.AsyncClient, app: FastAPI
) -> None:
    await make_account(client)
    await create_meter(client)
    await client.post("/usage_meters/um.tokens/deactivate")
    await client.post("/ingest", json={"event": event("e-1", None)})  # no attribute needed now
    await drain(app)
    assert (await client.get("/usage/events/e-1")).json()["status"] == "UNMETERED"
    await client.post("/usage_meters/um.tokens/activate")
    await client.post("/ingest", json={"event": event("e-2")})
    await drain(app)
    assert (await client.get("/usage/events/e-2")).json()["status"] == "APPLIED"


async def _status_within(client: httpx.AsyncClient, event_id: str, seconds: float) -> str:
    deadline = asyncio.get_running_loop().time() + seconds
    while True:
        status = str((await client.get(f"/usage/events/{event_id}")).json()["status"])
        if status != "PENDING" or asyncio.get_running_loop().time() > deadline:
            return status
        await asyncio.sleep(0.02)


async def test_the_running_applier_takes_its_own_events_at_once_and_others_by_polling(
    db: Database, clock: FixedClock, api_key: str
) -> None:
    """Two apps on one database play two processes: only the first runs its applier. Its own
    ingest wakes it; the other's event waits for a poll. On SQLite the poll takes only events
    received before its grace (fresh ones are their own process's); on PostgreSQL the running
    applier holds the only seat, so it owns every account and its poll takes them at once
    (services/seating.py)."""
    running = create_app(db, clock, usage_poll_seconds=0.05, usage_gather_seconds=0.05)
    idle = create_app(db, clock)
    headers = {"Authorization": f"Bearer {api_key}"}
    clients = [
        httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url="http://t", headers=headers
        )
        for app in (running, idle)
    ]
    applier: Applier = running.state.applier
    task = asyncio.create_task(applier.run())
    try:
        first, second = clients
        await make_account(first)
        await create_meter(first)
        assert (await first.post("/ingest", json={"event": event("own")})).status_code == 202
        assert await _status_within(first, "own", 2) == "APPLIED"
        assert (await second.post("/ingest", json={"event": event("theirs")})).status_code == 202
        if db.is_postgresql:
            # alone: an earlier test's seat goes a moment after its connection closed
            seating = applier.seating
            assert seating is not None
            for _ in range(100):
                if seating.share == (1, 0):
                    break
                await asyncio.sleep(0.05)
            assert seating.share == (1, 0)
            assert await _status_within(first, "theirs", 2) == "APPLIED"
            return
        await asyncio.sleep(0.2)  # polls come, but the event is as fresh as the fixed clock
        assert (await first.get("/usage/events/theirs")).json()["status"] == "PENDING"
        clock.advance(timedelta(seconds=2))  # past the poll's grace (1 s)
        assert await _status_within(first, "theirs", 2) == "APPLIED"
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        await applier.stop()
        for http in clients:
            await http.aclose()


async def test_concurrent_ingests_share_transactions_and_a_refused_event_fails_alone(
    client: httpx.AsyncClient, app: FastAPI, db: Database, clock: FixedClock, org_name: str
) -> None:
    for n in range(5):
        await make_account(client, f"acc-{n}")
    await create_meter(client, filters=[])
    await grant(client, "acc-0", amount=1)
    sends = [
        client.post("/ingest", json={"event": event(f"e-{n}", account=f"acc-{n % 5}")})
        for n in range(60)
    ]
    sends += [client.post("/ingest", json={"event": event("bad", account="nobody")})]
    # the same id as e-0 with other content (but the same cost): one of the two is refused
    other = event("e-0", account="acc-0", dimensions={"model": "large", "extra": "1"})
    sends += [client.post("/ingest", json={"event": other})]
    answers = await asyncio.gather(*sends)
    statuses = [answer.status_code for answer in answers]
    assert statuses[1:60] == [202] * 59
    assert statuses[60] == 404
    assert sorted([statuses[0], statuses[61]]) == [202, 409], statuses
    ingestion = app.state.ingestion
    assert ingestion.requests >= 62 and ingestion.groups < ingestion.requests
    await drain(app)
    usage = decimal_json(await client.get("/accounts/acc-0/usage"))
    # 12 events of 1000 tokens at 2 per 1000: 24, of which the one credit pays 1
    assert usage["meters"] == [
        {
            "meterId": "um.tokens",
            "quantity": 12000,
            "cost": 24,
            "paidByCredits": 1,
            "paidByWallet": 0,
            "uncovered": 23,
            "events": 12,
        }
    ]
    await assert_books_balance(db, clock, org_name)


def _served(app: FastAPI, api_key: str) -> httpx.AsyncClient:
    return httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app),
        base_url="http://t",
        headers={"Authorization": f"Bearer {api_key}"},
    )


async def test_answers_wait_while_applying_is_behind_but_never_past_the_limit(
    db: Database, clock: FixedClock, api_key: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Backpressure: the events are committed at once, but their answer waits while the
    applier says it is behind (checked again every step), and at most `usage_hold_seconds`
    (DRAWDOWN_USAGE_HOLD_SECONDS)."""
    from drawdown.services import ingest as ingest_module

    monkeypatch.setattr(ingest_module, "HOLD_STEP_SECONDS", 0.01)
    app = create_app(db, clock, usage_poll_seconds=0.05, usage_hold_seconds=0.3)
    asked: list[set[int]] = []
    answers = iter([True, True, False])

    async def behind(account_seqs: set[int]) -> bool:
        asked.append(account_seqs)
        return next(answers, True)

    app.state.ingestion.behind = behind
    async with _served(app, api_key) as http:
        await make_account(http)
        assert (await http.post("/ingest", json={"event": event("e-1")})).status_code == 202
        assert len(asked) == 3 and len(asked[0]) == 1
        # stored before its answer: the status is readable however long the answer waited
        assert (await http.get("/usage/events/e-1")).json()["status"] == "PENDING"
        started = asyncio.get_running_loop().time()
        assert (await http.post("/ingest", json={"event": event("e-2")})).status_code == 202
        assert 0.25 < asyncio.get_running_loop().time() - started < 2
        duplicate = await http.post("/ingest", json={"event": event("e-2")})
        assert duplicate.json()["details"]["duplicates"] == 1  # nothing new: nothing to wait for


async def test_with_no_hold_answers_never_wait_nor_ask_whether_applying_is_behind(
    db: Database, clock: FixedClock, api_key: str
) -> None:
    app = create_app(db, clock, usage_poll_seconds=0.05, usage_hold_seconds=0)
    assert app.state.ingestion.behind is None
    async with _served(app, api_key) as http:
        await make_account(http)
        assert (await http.post("/ingest", json={"event": event("e-1")})).status_code == 202


async def test_rounds_begin_the_gather_interval_apart(
    db: Database, clock: FixedClock, api_key: str
) -> None:
    """DRAWDOWN_USAGE_GATHER_SECONDS apart from the poll: with a quick poll and a gather of two
    seconds, the first round begins two seconds after the applier starts, so an event ingested
    meanwhile waits for it (the fixed clock keeps it too fresh for the polls), then is
    applied. Every read answered before those two seconds must see it pending, however slow
    the machine: the applier starts only after the setup (which took 0.7 s on a loaded CI),
    and answers are not held for backpressure (on a CI run an ingest took 0.9 s)."""
    gather = 2.0
    app = create_app(
        db, clock, usage_poll_seconds=0.02, usage_gather_seconds=gather, usage_hold_seconds=0
    )
    applier: Applier = app.state.applier
    assert (applier.poll_seconds, applier.gather_seconds) == (0.02, gather)
    loop = asyncio.get_running_loop()
    task: asyncio.Task[None] | None = None
    try:
        async with _served(app, api_key) as http:
            await make_account(http)
            await create_meter(http)
            started = loop.time()
            task = asyncio.create_task(applier.run())
            assert (await http.post("/ingest", json={"event": event("e-1")})).status_code == 202
            seen_before_the_round = []
            while loop.time() < started + gather - 0.1:
                status = (await http.get("/usage/events/e-1")).json()["status"]
                if loop.time() < started + gather:
                    seen_before_the_round.append(status)
                await asyncio.sleep(0.02)
            assert seen_before_the_round and set(seen_before_the_round) == {"PENDING"}
            assert await _status_within(http, "e-1", 5) == "APPLIED"
            assert loop.time() - started >= gather
    finally:
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        await applier.stop()


def test_the_usage_settings_reach_the_applier_and_ingestion(
    db: Database, clock: FixedClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    from drawdown.config import Settings, SettingsError

    settings = Settings.from_env()
    assert (settings.usage_gather_seconds, settings.usage_behind_seconds) == (None, 0.3)
    assert create_app(db, clock).state.applier.gather_seconds == 0.5  # None: the default
    assert (settings.usage_hold_seconds, settings.max_batch_bytes) == (2.0, 16 * 2**20)
    monkeypatch.setenv("DRAWDOWN_USAGE_POLL_SECONDS", "0.5")
    monkeypatch.setenv("DRAWDOWN_USAGE_GATHER_SECONDS", "0.1")
    monkeypatch.setenv("DRAWDOWN_USAGE_BEHIND_SECONDS", "3")
    monkeypatch.setenv("DRAWDOWN_USAGE_HOLD_SECONDS", "0.25")
    monkeypatch.setenv("DRAWDOWN_MAX_BATCH_BYTES", str(2**21))
    settings = Settings.from_env()
    app = create_app(
        db,
        clock,
        usage_poll_seconds=settings.usage_poll_seconds,
        usage_gather_seconds=settings.usage_gather_seconds,
        usage_behind_seconds=settings.usage_behind_seconds,
        usage_hold_seconds=settings.usage_hold_seconds,
        max_batch_bytes=settings.max_batch_bytes,
    )
    applier: Applier = app.state.applier
    assert (applier.poll_seconds, applier.gather_seconds, applier.behind_seconds) == (0.5, 0.1, 3)
    assert app.state.ingestion.max_hold_seconds == 0.25
    assert settings.max_batch_bytes == 2**21
    for name, value, words in (
        ("DRAWDOWN_USAGE_GATHER_SECONDS", "-1", "at least 0"),
        ("DRAWDOWN_USAGE_BEHIND_SECONDS", "many", "must be a number, not 'many'"),
        ("DRAWDOWN_USAGE_HOLD_SECONDS", "-0.5", "at least 0"),
        ("DRAWDOWN_MAX_BATCH_BYTES", "1000", "at least 1048576"),
    ):
        monkeypatch.setenv(name, value)
        with pytest.raises(SettingsError, match=f"{name} .*{words}"):
            Settings.from_env()
        monkeypatch.delenv(name)


async def test_behind_means_events_this_process_woke_for_have_waited_past_the_limit(
    client: httpx.AsyncClient, app: FastAPI
) -> None:
    """The applier is behind once an account its process woke has waited `behind_seconds`
    (DRAWDOWN_USAGE_BEHIND_SECONDS) for a burn beyond the gather, and no longer once that
    account is burned."""
    await make_account(client)
    await make_account(client, "acc-2")
    applier: Applier = app.state.applier
    # margins of a second and more: a loaded CI machine stalls for tenths of one
    applier.behind_seconds, applier.gather_seconds = 0.5, 1.0
    assert not await applier.behind(set())
    loop = asyncio.get_running_loop()
    assert (await ingest_batch(client, event("e-1"))).status_code == 202
    woken = loop.time()
    assert not await applier.behind(set())  # just woken
    await asyncio.sleep(0.15)
    assert not await applier.behind(set())  # waiting for its round is no backlog
    await asyncio.sleep(max(0.0, woken + 1.6 - loop.time()))
    assert await applier.behind(set())
    applier.gather_seconds = 0
    await drain(app)
    assert not await applier.behind(set())
    # what waits is judged by its oldest account: a fresh wake does not hide an old one
    assert (await ingest_batch(client, event("e-2"))).status_code == 202
    await asyncio.sleep(0.6)
    assert (await ingest_batch(client, event("e-3", account="acc-2"))).status_code == 202
    assert await applier.behind(set())
    await drain(app)
    assert not await applier.behind(set())


async def test_an_account_whose_burn_failed_is_left_to_the_poll_and_not_judged_behind(
    client: httpx.AsyncClient, app: FastAPI, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A burn that fails leaves its events pending for the next poll; meanwhile the account
    must not keep the applier 'behind' (another process may apply it, and nothing here would
    then ever clear it)."""
    from drawdown.errors import Unavailable

    await make_account(client)
    await create_meter(client)
    applier: Applier = app.state.applier
    applier.behind_seconds, applier.gather_seconds = 0.001, 0

    async def unavailable(*_args: object, **_kwargs: object) -> None:
        raise Unavailable("the database is down")

    monkeypatch.setattr(applier.writes, "burn", unavailable)
    assert (await ingest_batch(client, event("e-1"))).status_code == 202
    await asyncio.sleep(0.01)
    assert await applier.behind(set())
    assert await applier.drain() == 0
    assert not await applier.behind(set())
    assert (await client.get("/usage/events/e-1")).json()["status"] == "PENDING"
    monkeypatch.undo()
    assert await applier.drain() == 1
    assert (await client.get("/usage/events/e-1")).json()["status"] == "APPLIED"


async def test_a_cancelled_applier_stops_even_when_woken_at_that_moment(
    db: Database, clock: FixedClock
) -> None:
    """On Python 3.11, asyncio.wait_for returned normally when a cancellation came in the same
    loop step as what it waited for: the applier's loop, woken and cancelled at once, ran on
    and its task never finished (a server's shutdown, a test's teardown hung)."""
    app = create_app(db, clock, usage_poll_seconds=0.05, usage_gather_seconds=0)
    applier: Applier = app.state.applier
    try:
        for _ in range(5):
            task = asyncio.create_task(applier.run())
            await asyncio.sleep(0.2)  # it waits for a wake, most of the time
            applier.wake([])  # the wake and the cancel reach the loop in the same step
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                try:
                    async with asyncio.timeout(2):
                        await task
                except TimeoutError:
                    raise AssertionError("the cancelled applier ran on") from None
    finally:
        await applier.stop()
