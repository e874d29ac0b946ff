"""Driving the usage API over HTTP and comparing what it shows with tests/usage_reference.py.

Only the wire contract is used here (docs/usage.md): meters, /ingest, /ingestBatch and the usage
reads. Nothing from drawdown is imported for the rules."""

from __future__ import annotations

import asyncio
import json
import time
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any
from urllib.parse import quote

import httpx

from tests.helpers import credit_as_seen, decimal_json
from tests.reference_model import units
from tests.usage_reference import (
    DUPLICATE,
    Event,
    Meter,
    Organization,
    Outcome,
    Rate,
)

APPLY_TIMEOUT_S = 60.0


def exact_json(body: Any) -> str:
    """JSON with every Decimal written as the number literal it is, never through a float."""
    text = json.dumps(body, default=lambda value: f"<<{value}>>")
    return text.replace('"<<', "").replace('>>"', "")


def iso(moment: datetime) -> str:
    """An instant as ISO 8601 with Z when in UTC, else with its offset."""
    text = moment.isoformat()
    return text.removesuffix("+00:00") + "Z" if text.endswith("+00:00") else text


def plain(value: Decimal) -> str:
    """A decimal as Togai's attribute text: digits, an optional fraction, no exponent."""
    return format(value, "f")


def parse_time(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00")).astimezone(UTC)


# Wire bodies ---------------------------------------------------------------------------------


def meter_body(meter: Meter) -> dict[str, Any]:
    first = meter.rates[0]
    body: dict[str, Any] = {
        "id": meter.id,
        "name": meter.name,
        "eventSchemaName": meter.schema,
        "aggregation": meter.aggregation,
        "filters": [{"field": f, "value": v} for f, v in meter.filters],
        "creditRate": {"credits": first.credits, "perQuantity": first.per_quantity},
    }
    if meter.attribute is not None:
        body["attribute"] = meter.attribute
    if first.effective_from is not None:
        body["effectiveFrom"] = iso(first.effective_from)
    return body


def event_body(event: Event, texts: dict[str, str] | None = None) -> dict[str, Any]:
    """Togai's Event; `texts` gives an attribute's wire text where it must differ from the
    plain form of its value (e.g. "1.50")."""
    body: dict[str, Any] = {
        "schemaName": event.schema,
        "timestamp": iso(event.timestamp),
        "accountId": event.account_id,
        "attributes": [
            {"name": n, "value": (texts or {}).get(n, plain(v)), **({"unit": u} if u else {})}
            for n, v, u in event.attributes
        ],
        "dimensions": dict(event.dimensions),
    }
    if event.id is not None:
        body["id"] = event.id
    return body


# Calls ---------------------------------------------------------------------------------------


async def post(http: httpx.AsyncClient, path: str, body: Any) -> httpx.Response:
    return await http.post(
        path, content=exact_json(body), headers={"Content-Type": "application/json"}
    )


async def create_meter(http: httpx.AsyncClient, org: Organization, meter: Meter) -> None:
    response = await post(http, "/usage_meters", meter_body(meter))
    assert response.status_code == 201, response.text
    org.add_meter(meter)
    assert_meter(decimal_json(response), org.meters[meter.id])


async def change_rate(
    http: httpx.AsyncClient, org: Organization, meter_id: str, rate: Rate
) -> None:
    assert rate.effective_from is not None
    body = {
        "creditRate": {"credits": rate.credits, "perQuantity": rate.per_quantity},
        "effectiveFrom": iso(rate.effective_from),
    }
    response = await http.patch(
        f"/usage_meters/{meter_id}",
        content=exact_json(body),
        headers={"Content-Type": "application/json"},
    )
    assert response.status_code == 200, response.text
    org.change_rate(meter_id, rate)
    assert_meter(decimal_json(response), org.meters[meter_id])


async def set_active(
    http: httpx.AsyncClient, org: Organization, meter_id: str, active: bool
) -> None:
    action = "activate" if active else "deactivate"
    response = await http.post(f"/usage_meters/{meter_id}/{action}")
    assert response.status_code == 200, response.text
    org.set_active(meter_id, active)
    assert_meter(decimal_json(response), org.meters[meter_id])


def assert_meter(body: dict[str, Any], meter: Meter) -> None:
    expected = meter.view()
    got = {key: body[key] for key in expected}
    got["rates"] = [
        {
            "credits": r["credits"],
            "perQuantity": r["perQuantity"],
            "effectiveFrom": None if r["effectiveFrom"] is None else parse_time(r["effectiveFrom"]),
        }
        for r in body["rates"]
    ]
    assert got == expected, (got, expected)


async def make_account(http: httpx.AsyncClient, org: Organization, account_id: str) -> None:
    response = await http.post(
        "/customers",
        json={
            "id": f"cust-{account_id}",
            "name": "Usage customer",
            "primaryEmail": "usage@example.test",
            "address": {},
            "account": {"id": account_id, "name": f"Account {account_id}"},
        },
    )
    assert response.status_code == 201, response.text
    org.add_account(account_id)


async def grant(
    http: httpx.AsyncClient,
    org: Organization,
    account_id: str,
    value: Decimal,
    priority: int,
    effective_from: date,
    effective_until: date | None,
    scope: list[str] | None,
) -> str:
    body: dict[str, Any] = {
        "accountId": account_id,
        "purpose": "PREPAID_CREDIT",
        "effectiveFrom": effective_from.isoformat(),
        "creditAmount": value,
        "priority": priority,
        "applicableEntityIds": scope,
    }
    if effective_until is not None:
        body["effectiveUntil"] = effective_until.isoformat()
    response = await post(http, "/credits", body)
    assert response.status_code == 200, response.text
    credit = decimal_json(response)
    org.move_to(datetime.now(UTC).date())
    org.grant(
        account_id,
        credit["id"],
        units(value),
        priority,
        effective_from,
        effective_until,
        scope,
        parse_time(credit["createdAt"]),
    )
    return str(credit["id"])


async def ingest_one(
    http: httpx.AsyncClient, org: Organization, event: Event, texts: dict[str, str] | None = None
) -> tuple[httpx.Response, Outcome]:
    """POST /ingest, and what the model says of it; the status must be the model's."""
    response = await post(http, "/ingest", {"event": event_body(event, texts)})
    outcome = org.ingest(event, datetime.now(UTC))
    assert response.status_code in outcome.statuses, (outcome, response.text)
    body = response.json()
    if outcome.accepted:
        assert body["success"] is True and body["statusCode"] == 202, body
        assert body["details"] == {
            "accepted": 1,
            "duplicates": 1 if outcome.kind == DUPLICATE else 0,
        }, body
    else:
        assert list(body) == ["message"], response.text
        if outcome.meter_ids and not outcome.alternative:
            assert any(m in body["message"] for m in outcome.meter_ids), (outcome, body)
    return response, outcome


async def ingest_batch(
    http: httpx.AsyncClient, org: Organization, events: list[Event]
) -> tuple[httpx.Response, list[Outcome]]:
    """POST /ingestBatch, and what the model says of each event; the answer must name
    exactly the events the model refuses."""
    response = await post(http, "/ingestBatch", {"events": [event_body(e) for e in events]})
    outcomes = org.ingest_batch(events, datetime.now(UTC))
    assert_batch_answer(response, events, outcomes)
    return response, outcomes


def assert_batch_answer(
    response: httpx.Response, events: list[Event], outcomes: list[Outcome]
) -> None:
    body = response.json()
    refused = [i for i, o in enumerate(outcomes) if not o.accepted]
    duplicates = sum(1 for o in outcomes if o.kind == DUPLICATE)
    accepted = len(outcomes) - len(refused)
    if not refused:
        assert response.status_code == 202, response.text
        assert body["success"] is True and body["statusCode"] == 202, body
        assert body["details"]["accepted"] == accepted, body
        assert body["details"]["duplicates"] == duplicates, body
        return
    assert response.status_code == 207, (outcomes, response.text)
    assert body["success"] is False and body["statusCode"] == 207, body
    assert body["message"] == f"{len(refused)} of {len(outcomes)} events refused", body
    details = body["details"]
    assert (details["accepted"], details["duplicates"]) == (accepted, duplicates), (
        details,
        outcomes,
    )
    named = [(r["index"], r["id"]) for r in details["refused"]]
    assert named == [(i, events[i].id) for i in refused], (named, outcomes)
    for shown, index in zip(details["refused"], refused, strict=True):
        assert isinstance(shown["reason"], str) and shown["reason"], shown
        meter_ids = outcomes[index].meter_ids
        if meter_ids and not outcomes[index].alternative:
            assert any(m in shown["reason"] for m in meter_ids), (shown, outcomes[index])


# Waiting and comparing -----------------------------------------------------------------------


async def usage(http: httpx.AsyncClient, account_id: str, **params: str) -> dict[str, Any]:
    response = await http.get(f"/accounts/{account_id}/usage", params=params)
    assert response.status_code == 200, response.text
    return dict(decimal_json(response))


async def wait_applied(
    http: httpx.AsyncClient, account_ids: list[str], timeout_s: float = APPLY_TIMEOUT_S
) -> None:
    """Until every account shows nothing pending."""
    deadline = time.monotonic() + timeout_s
    for account_id in account_ids:
        while True:
            body = await usage(http, account_id)
            if body["pending"] == 0:
                break
            assert time.monotonic() < deadline, f"{account_id}: {body['pending']} still pending"
            await asyncio.sleep(0.05)


def event_as_seen(body: dict[str, Any]) -> dict[str, Any]:
    """An event read off GET /usage/events/{id}, in the model's terms (without exactCost)."""
    return {
        "id": body["id"],
        "accountId": body["accountId"],
        "timestamp": parse_time(body["timestamp"]),
        "status": body["status"],
        "meters": [
            {
                "meterId": m["meterId"],
                "quantity": m["quantity"],
                "rate": {"credits": m["rate"]["credits"], "perQuantity": m["rate"]["perQuantity"]},
                "cost": m["cost"],
                "allocations": [
                    {"creditId": a["creditId"], "amount": a["amount"]} for a in m["allocations"]
                ],
                "uncovered": m["uncovered"],
            }
            for m in body["meters"]
        ],
    }


async def compare_event(http: httpx.AsyncClient, org: Organization, event_id: str) -> None:
    response = await http.get(f"/usage/events/{quote(event_id, safe='')}")
    assert response.status_code == 200, response.text
    assert_event(decimal_json(response), org)


def assert_event(body: dict[str, Any], org: Organization) -> None:
    """One event as shown equals the model's, exactCost included."""
    event_id = body["id"]
    expected = org.event_view(event_id)
    assert event_as_seen(body) == expected, event_id
    for shown, charge in zip(body["meters"], org.events[event_id].charges, strict=True):
        if not charge.price.rounded:
            assert "exactCost" not in shown or shown["exactCost"] == shown["cost"], shown
            continue
        assert shown["exactCost"] == charge.price.exact_shown, (event_id, shown)


async def all_pages(http: httpx.AsyncClient, path: str, **params: str) -> list[Any]:
    found: list[Any] = []
    token = None
    while True:
        response = await http.get(
            path, params={**params, **({"nextToken": token} if token else {})}
        )
        assert response.status_code == 200, response.text
        page = decimal_json(response)
        found += page["data"]
        token = page.get("nextToken")
        if not token:
            return found


async def compare_ranges(http: httpx.AsyncClient, org: Organization, account_id: str) -> None:
    """?from=&to= on the totals and the list, and ?meterId= on the list, cut where the
    account's events lie (from inclusive, to exclusive)."""
    moments = sorted(
        {s.event.timestamp for s in org.events.values() if s.event.account_id == account_id}
    )
    if not moments:
        return
    middle = moments[len(moments) // 2]
    path = f"/accounts/{account_id}/usage/events"
    for start, end in ((middle, None), (None, middle), (moments[0], moments[-1])):
        params = {
            **({"from": iso(start.astimezone(UTC))} if start else {}),
            **({"to": iso(end.astimezone(UTC))} if end else {}),
        }
        narrowed = await usage(http, account_id, **params)
        assert narrowed["meters"] == org.usage_view(account_id, start, end)["meters"], params
        listed = await all_pages(http, path, **params)
        assert [e["id"] for e in listed] == org.events_newest_first(
            account_id, start=start, end=end
        ), params
    for meter_id in org.meters:
        listed = await all_pages(http, path, meterId=meter_id)
        assert [e["id"] for e in listed] == org.events_newest_first(account_id, meter_id)


def is_usage_line(line: tuple[Any, ...]) -> bool:
    kind, _, invoice, _ = line
    return bool(kind == "DEBITED" and invoice is None)


async def compare_account(http: httpx.AsyncClient, org: Organization, account_id: str) -> None:
    """The account's usage totals, every event, the event list, its credits and its balance
    are the model's, exactly."""
    org.check_invariants()
    body = await usage(http, account_id)
    expected = org.usage_view(account_id)
    assert body["accountId"] == account_id
    assert body["pending"] == expected["pending"] == 0
    through = body["appliedThrough"]
    assert (through and parse_time(through)) == org.applied_through(account_id), through
    assert body["meters"] == expected["meters"], (body["meters"], expected["meters"])
    ids = org.events_newest_first(account_id)
    path = f"/accounts/{account_id}/usage/events"
    listed = await all_pages(http, path, pageSize="7" if len(ids) < 100 else "50")
    assert [e["id"] for e in listed] == ids
    for shown in listed:
        assert_event(shown, org)
    # each one read alone too (a sample of a long list)
    for event_id in ids if len(ids) <= 100 else ids[:: len(ids) // 50]:
        await compare_event(http, org, event_id)
    await compare_ranges(http, org, account_id)
    account = org.accounts[account_id]
    for credit_id in account.credits:
        response = await http.get(f"/credits/{credit_id}")
        assert response.status_code == 200, response.text
        details = decimal_json(response)
        seen = credit_as_seen(details)
        view = account.credit_view(credit_id)
        assert (seen["status"], seen["creditAmount"], seen["consumedAmount"]) == (
            view["status"],
            view["creditAmount"],
            view["consumedAmount"],
        ), credit_id
        assert seen["holdAmount"] == view["holdAmount"]
        # every line but usage's in order; usage's (DEBITED, no invoice) summed per meter
        others = [t for t in seen["transactions"] if not is_usage_line(t)]
        expected_others = [t for t in view["transactions"] if not is_usage_line(t)]  # type: ignore[attr-defined]
        assert others == expected_others, credit_id
        debited: dict[str, Decimal] = {}
        for _, value, _, entity in filter(is_usage_line, seen["transactions"]):
            debited[entity] = debited.get(entity, Decimal(0)) + value
        assert debited == org.debited_by_meter(credit_id), credit_id
    response = await http.get(f"/accounts/{account_id}/credit_balance")
    assert response.status_code == 200, response.text
    balance = decimal_json(response)
    view = account.balance_view()
    assert {key: balance[key] for key in view} == view
