"""Random sequences of grants, holds, re-holds, captures, releases, debits, voids and clock
moves past expiries. After every step the arithmetic of credits.md holds for every credit,
the balance agrees with the credits, nothing answers 5xx, and `verify` is clean."""

import json
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any

import httpx
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from drawdown.api.app import create_app
from drawdown.clock import FixedClock
from drawdown.jobs.expiry import sweep
from drawdown.store.database import Database
from tests.conftest import new_key
from tests.helpers import post_raw
from tests.oracle import books_problems

START = datetime(2026, 11, 20, 12, tzinfo=UTC)
INVOICES = ["inv-a", "inv-b", "inv-c"]
ENTITIES = [("um.api", "USAGE_METER_RATE_CARD"), ("ff.seat", "FIXED_FEE_RATE_CARD")]
SCOPES: list[list[str] | None] = [
    None,
    [],
    ["um.api"],
    ["ALL_FIXED_FEE_RATE_CARDS"],
    ["ALL_USAGE_METER_RATE_CARDS"],
]

amounts = st.decimals(min_value=Decimal("0.01"), max_value=Decimal(500), places=2)
line_amounts = st.lists(
    st.tuples(st.sampled_from(ENTITIES), st.decimals(min_value=0, max_value=300, places=3)),
    min_size=1,
    max_size=3,
)

grant_op = st.tuples(
    st.just("grant"),
    amounts,
    st.integers(0, 3),
    st.integers(-5, 4),
    st.one_of(st.none(), st.integers(-3, 10)),
    st.sampled_from(range(len(SCOPES))),
)
apply_op = st.tuples(
    st.sampled_from(["hold", "debit"]),
    st.sampled_from(INVOICES),
    line_amounts,
    st.one_of(st.none(), st.integers(-2, 3)),
)
settle_op = st.tuples(st.sampled_from(["capture", "release"]), st.sampled_from(INVOICES))
void_op = st.tuples(st.just("void"), st.integers(0, 20))
clock_op = st.tuples(st.just("advance"), st.integers(1, 6), st.booleans())
operation = st.one_of(grant_op, grant_op, apply_op, apply_op, settle_op, void_op, clock_op)


def _decimal_json(response: httpx.Response) -> Any:
    return json.loads(response.text, parse_float=Decimal, parse_int=Decimal)


def _day(offset: int, today: date) -> str:
    return (today + timedelta(days=offset)).isoformat()


async def _step(
    http: httpx.AsyncClient, db: Database, clock: FixedClock, op: tuple[Any, ...], ids: list[str]
) -> httpx.Response | None:
    today = clock.now().date()
    kind = op[0]
    if kind == "grant":
        _, amount, priority, start, until, scope = op
        body: dict[str, Any] = {
            "accountId": "acc",
            "purpose": "PROMOTIONAL",
            "effectiveFrom": _day(start, today),
            "priority": priority,
            "applicableEntityIds": SCOPES[scope],
        }
        if until is not None:
            body["effectiveUntil"] = _day(max(start, until), today)
        text = json.dumps(body)[:-1] + f', "creditAmount": {amount}}}'
        response = await post_raw(http, "/credits", text)
        if response.status_code == 200:
            ids.append(response.json()["id"])
        return response
    if kind in ("hold", "debit"):
        _, invoice, items, as_of = op
        lines = ",".join(
            f'{{"entityId":"{e}","entityType":"{t}","amount":{a}}}' for (e, t), a in items
        )
        as_of_field = f'"asOf":"{_day(as_of, today)}",' if as_of is not None else ""
        head = f'{{"invoiceId":"{invoice}","mode":"{kind.upper()}",{as_of_field}'
        text = f'{head}"lineItems":[{lines}]}}'
        return await post_raw(http, "/accounts/acc/credit_applications", text)
    if kind in ("capture", "release"):
        return await http.post(f"/accounts/acc/credit_applications/{op[1]}/{kind}")
    if kind == "void":
        if not ids:
            return None
        return await http.post(f"/credits/{ids[op[1] % len(ids)]}/void")
    if kind == "advance":
        clock.advance(timedelta(days=op[1]))
        if op[2]:
            await sweep(db, clock)
        return None
    raise AssertionError(kind)


async def _check(http: httpx.AsyncClient, db: Database, clock: FixedClock, org: str) -> None:
    today = clock.now().date()
    credits = []
    token = None
    while True:
        params = {"account_id": "acc", **({"nextToken": token} if token else {})}
        page = _decimal_json(await http.get("/credits", params=params))
        credits += page["data"]
        token = page.get("nextToken")
        if not token:
            break
    active_total = Decimal(0)
    for listed in credits:
        credit = _decimal_json(await http.get(f"/credits/{listed['id']}"))
        totals: dict[str, Decimal] = {}
        for line in credit["transactions"]:
            totals[line["transactionType"]] = (
                totals.get(line["transactionType"], 0) + line["amount"]
            )
            assert line["amount"] > 0
        amount, consumed, held = (
            credit["creditAmount"],
            credit["consumedAmount"],
            credit["holdAmount"],
        )
        closed = totals.get("EXPIRED", 0) + totals.get("VOIDED", 0)
        available = amount - consumed - held - closed
        assert totals["CREDITED"] == amount
        assert totals.get("DEBITED", 0) == consumed
        assert available >= 0 and held >= 0
        status = credit["status"]
        until = credit.get("effectiveUntil")
        if status == "ACTIVE":
            assert until is None or date.fromisoformat(until) >= today
            active_total += amount
        if status == "CONSUMED":
            assert consumed == amount
        if status in ("EXPIRED", "VOIDED"):
            assert available == 0
    balance = _decimal_json(await http.get("/accounts/acc/credit_balance"))
    assert balance["activeCredits"] == active_total
    assert balance["runningBalance"] <= balance["availableBalance"]
    assert await books_problems(db, clock, org) == []


@settings(
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(st.lists(operation, min_size=1, max_size=12))
async def test_random_histories_keep_the_books_exact(db: Database, ops: list[Any]) -> None:
    org = f"prop-{datetime.now(UTC).timestamp()}-{id(ops)}"
    key = await new_key(db, org=org)
    clock = FixedClock(START)
    app = create_app(db, clock)
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app),
        base_url="http://drawdown.test",
        headers={"Authorization": f"Bearer {key}"},
    ) as http:
        created = await http.post(
            "/customers",
            json={
                "id": "cust",
                "name": "Property Customer",
                "primaryEmail": "p@example.test",
                "address": {},
                "account": {"id": "acc", "name": "Property account"},
            },
        )
        assert created.status_code == 201
        ids: list[str] = []
        for op in ops:
            response = await _step(http, db, clock, op, ids)
            if response is not None:
                assert response.status_code < 500, response.text
                assert response.status_code in (200, 400, 404, 409), (op, response.text)
            await _check(http, db, clock, org)
