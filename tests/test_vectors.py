"""The worked drawdown cases (a copy of the team's vectors in tests/vectors/), through the
pure rules and through the API."""

import json
from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import pytest

from drawdown.clock import FixedClock
from drawdown.ledger.allocation import Candidate, EntityType, LineItem, allocate
from tests.helpers import make_account, post_raw

VECTORS = Path(__file__).resolve().parent / "vectors" / "drawdown-order.json"
CASES: list[dict[str, Any]] = json.loads(VECTORS.read_text())["cases"]
DEFAULT_CREATED = datetime(2026, 1, 1, tzinfo=UTC)


def _created_at(spec: dict[str, Any], index: int) -> datetime:
    if spec.get("createdAt"):
        return datetime.fromisoformat(spec["createdAt"].replace("Z", "+00:00"))
    return DEFAULT_CREATED.replace(second=index)


def _expected(case: dict[str, Any]) -> list[list[tuple[str, Decimal]]]:
    return [
        [(key, Decimal(amount)) for key, amount in line["allocations"]]
        for line in case["expected"]["lineItems"]
    ]


@pytest.mark.parametrize("case", CASES, ids=[c["name"] for c in CASES])
def test_vector_through_the_rules(case: dict[str, Any]) -> None:
    as_of = date.fromisoformat(case["asOf"])
    candidates = [
        Candidate(
            credit_id=spec["key"],
            available=Decimal(spec["creditAmount"]),
            priority=spec["priority"],
            effective_from=date.fromisoformat(spec.get("effectiveFrom") or "2026-01-01"),
            effective_until=(
                date.fromisoformat(spec["effectiveUntil"]) if spec["effectiveUntil"] else None
            ),
            created_at=_created_at(spec, index),
            applicable_entity_ids=spec["applicableEntityIds"],
        )
        for index, spec in enumerate(case["credits"])
        # a credit already past its last day is EXPIRED, never a candidate
        if not spec["effectiveUntil"] or date.fromisoformat(spec["effectiveUntil"]) >= as_of
    ]
    items = [
        LineItem(i["entityId"], EntityType(i["entityType"]), Decimal(i["amount"]))
        for i in case["lineItems"]
    ]
    result = allocate(items, candidates, as_of)
    assert [line.allocations for line in result] == _expected(case)
    for line, expected in zip(result, case["expected"]["lineItems"], strict=True):
        assert line.remaining == Decimal(expected["remainingAmount"])


@pytest.mark.parametrize("case", CASES, ids=[c["name"] for c in CASES])
async def test_vector_through_the_api(
    case: dict[str, Any], client: httpx.AsyncClient, clock: FixedClock
) -> None:
    as_of = date.fromisoformat(case["asOf"])
    await make_account(client, "acc-v")
    credit_ids: dict[str, str] = {}
    for index, spec in enumerate(case["credits"]):
        clock.set(_created_at(spec, index))
        body = {
            "accountId": "acc-v",
            "purpose": "PREPAID_CREDIT",
            "effectiveFrom": spec.get("effectiveFrom") or "2026-01-01",
            "priority": spec["priority"],
            "applicableEntityIds": spec["applicableEntityIds"],
        }
        if spec["effectiveUntil"]:
            body["effectiveUntil"] = spec["effectiveUntil"]
        text = json.dumps(body)[:-1] + f', "creditAmount": {spec["creditAmount"]}}}'
        response = await post_raw(client, "/credits", text)
        assert response.status_code == 200, response.text
        credit_ids[response.json()["id"]] = spec["key"]
    clock.set(datetime.combine(as_of, datetime.min.time(), UTC).replace(hour=12))
    items = ",".join(
        f'{{"entityId":"{i["entityId"]}","entityType":"{i["entityType"]}","amount":{i["amount"]}}}'
        for i in case["lineItems"]
    )
    response = await post_raw(
        client,
        "/accounts/acc-v/credit_applications",
        f'{{"invoiceId":"inv-1","mode":"DEBIT","lineItems":[{items}]}}',
    )
    assert response.status_code == 200, response.text
    body = json.loads(response.text, parse_float=Decimal, parse_int=Decimal)
    got = [
        [(credit_ids[a["creditId"]], a["amount"]) for a in line["allocations"]]
        for line in body["lineItems"]
    ]
    assert got == _expected(case)
    assert body["appliedAmount"] == Decimal(case["expected"]["appliedAmount"])
    assert body["remainingAmount"] == Decimal(case["expected"]["remainingAmount"])
    assert body["status"] == "DEBITED"
