"""Random histories of grants, holds, re-holds, debits, captures, releases, voids, hostile
amounts and clock moves (across midnight and past expiries, with and without the sweep).

After every step the API must agree with the independent reference model
(tests/reference_model.py) to the last digit: the answer's status code and body, every credit's
status, amounts and ledger lines, the list of credits and the account's balance; and
`drawdown verify` must find the books sound. Amounts span the whole allowed range, from
0.0000000001 to 999999999999999999.9999999999, so sums of many maximal credits are exercised."""

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
from tests.helpers import credit_as_seen, decimal_json, post_raw
from tests.oracle import books_problems
from tests.reference_model import Account, Item, units

START = datetime(2026, 11, 20, 12, tzinfo=UTC)
ACCOUNT = "acc"
INVOICES = ["inv-a", "inv-b", "inv-c"]
ENTITIES = [("um.api", "USAGE_METER_RATE_CARD"), ("ff.seat", "FIXED_FEE_RATE_CARD")]
SCOPES: list[list[str] | None] = [
    None,
    [],
    ["um.api"],
    ["ALL_FIXED_FEE_RATE_CARDS"],
    ["ALL_USAGE_METER_RATE_CARDS"],
]
LARGEST = Decimal("999999999999999999.9999999999")
SMALLEST = Decimal("0.0000000001")
# Amounts a caller may not send: each must be a 400 that changes nothing.
HOSTILE_AMOUNTS = [
    "1.00000000000000000000000000001",  # 29 decimals
    "1000000000000000000",  # 19 digits before the point
    "0.00000000001",  # 11 decimals
    "1E+18",
    "0",
    "-1",
    "1E+1000000",
]

amounts = st.one_of(
    st.decimals(min_value=Decimal("0.01"), max_value=Decimal(500), places=2),
    st.decimals(min_value=SMALLEST, max_value=Decimal(1), places=10),
    st.decimals(min_value=SMALLEST, max_value=LARGEST, places=10),
    st.integers(1, 10**18 - 1).map(Decimal),
    st.just(LARGEST),
    st.just(SMALLEST),
)
line_amounts = st.one_of(st.just(Decimal(0)), amounts)
line_items = st.lists(st.tuples(st.sampled_from(ENTITIES), line_amounts), min_size=1, max_size=3)
days = st.integers(-5, 5)

grant_op = st.tuples(
    st.just("grant"),
    amounts,
    st.integers(0, 3),
    days,
    st.one_of(st.none(), st.integers(-3, 10)),
    st.sampled_from(range(len(SCOPES))),
)
many_maximal_op = st.tuples(st.just("many_maximal"), st.integers(2, 12))
hostile_op = st.tuples(st.just("hostile"), st.sampled_from(HOSTILE_AMOUNTS))
apply_op = st.tuples(
    st.sampled_from(["HOLD", "DEBIT"]),
    st.sampled_from(INVOICES),
    line_items,
    st.one_of(st.none(), st.integers(-2, 3)),
)
settle_op = st.tuples(st.sampled_from(["capture", "release"]), st.sampled_from(INVOICES))
void_op = st.tuples(st.just("void"), st.integers(0, 30))
clock_op = st.tuples(st.just("advance"), st.integers(1, 6 * 24), st.booleans())
operation = st.one_of(
    grant_op,
    grant_op,
    many_maximal_op,
    hostile_op,
    apply_op,
    apply_op,
    settle_op,
    void_op,
    clock_op,
)


def _day(offset: int, today: date) -> str:
    return (today + timedelta(days=offset)).isoformat()


class History:
    """One organization's account, driven through the API and the model side by side."""

    def __init__(self, http: httpx.AsyncClient, db: Database, clock: FixedClock, org: str):
        self.http, self.db, self.clock, self.org = http, db, clock, org
        self.model = Account(today=clock.now().date())
        self.ids: list[str] = []

    @property
    def today(self) -> date:
        return self.clock.now().date()

    async def grant(
        self,
        literal: str,
        priority: int,
        start: int,
        until: int | None,
        scope: list[str] | None,
    ) -> None:
        effective_from = self.today + timedelta(days=start)
        effective_until = None if until is None else self.today + timedelta(days=max(start, until))
        body: dict[str, Any] = {
            "accountId": ACCOUNT,
            "purpose": "PROMOTIONAL",
            "effectiveFrom": effective_from.isoformat(),
            "priority": priority,
            "applicableEntityIds": scope,
        }
        if effective_until is not None:
            body["effectiveUntil"] = effective_until.isoformat()
        # The amount goes in as the literal itself, never through a float.
        text = json.dumps(body)[:-1] + f', "creditAmount": {literal}}}'
        response = await post_raw(self.http, "/credits", text)
        try:
            count = units(literal)
        except (ValueError, ArithmeticError):
            count = -1
        expected = self.model.grant_status(count, effective_from, effective_until)
        assert response.status_code == expected, (literal, response.text)
        if expected != 200:
            assert set(response.json()) == {"message"}
            return
        credit_id = response.json()["id"]
        self.ids.append(credit_id)
        self.model.grant(
            credit_id, count, priority, effective_from, effective_until, scope, self.clock.now()
        )

    async def apply(self, mode: str, invoice: str, items: list[Any], as_of: int | None) -> None:
        as_of_day = None if as_of is None else self.today + timedelta(days=as_of)
        lines = ",".join(
            f'{{"entityId":"{e}","entityType":"{t}","amount":{a}}}' for (e, t), a in items
        )
        as_of_field = f'"asOf":"{as_of_day.isoformat()}",' if as_of_day else ""
        text = f'{{"invoiceId":"{invoice}","mode":"{mode}",{as_of_field}"lineItems":[{lines}]}}'
        response = await post_raw(self.http, f"/accounts/{ACCOUNT}/credit_applications", text)
        model_items = tuple(Item(e, t, units(a)) for (e, t), a in items)
        self._compare(response, self.model.apply(invoice, mode, as_of_day, model_items))

    async def settle(self, action: str, invoice: str) -> None:
        path = f"/accounts/{ACCOUNT}/credit_applications/{invoice}/{action}"
        response = await self.http.post(path)
        answer = self.model.capture(invoice) if action == "capture" else self.model.release(invoice)
        self._compare(response, answer)

    async def void(self, pick: int) -> None:
        if not self.ids:
            return
        credit_id = self.ids[pick % len(self.ids)]
        response = await self.http.post(f"/credits/{credit_id}/void")
        expected = self.model.void(credit_id)
        assert response.status_code == expected.status, response.text

    def _compare(self, response: httpx.Response, answer: Any) -> None:
        assert response.status_code == answer.status, response.text
        if answer.application is None:
            assert set(response.json()) == {"message"}
            return
        body = decimal_json(response)
        expected = answer.application.view()
        got = {key: body[key] for key in expected if key != "lineItems"}
        got["lineItems"] = [
            {key: item[key] for key in expected["lineItems"][0]} for item in body["lineItems"]
        ]
        assert got == expected
        assert body["accountId"] == ACCOUNT

    async def advance(self, hours: int, run_sweep: bool) -> None:
        self.clock.advance(timedelta(hours=hours))
        self.model.move_to(self.today)
        if run_sweep:
            await sweep(self.db, self.clock)

    async def compare_everything(self) -> None:
        """The API's whole view of the account equals the model's, and verify is clean."""
        self.model.check_invariants()
        listed: dict[str, str] = {}
        token = None
        while True:
            params = {"account_id": ACCOUNT, **({"nextToken": token} if token else {})}
            page = await self.http.get("/credits", params=params)
            assert page.status_code == 200, page.text
            for credit in page.json()["data"]:
                listed[credit["id"]] = credit["status"]
            token = page.json().get("nextToken")
            if not token:
                break
        assert listed == {cid: c.status for cid, c in self.model.credits.items()}
        for credit_id in self.model.credits:
            response = await self.http.get(f"/credits/{credit_id}")
            assert response.status_code == 200, response.text
            body = decimal_json(response)
            got = credit_as_seen(body)
            assert got == self.model.credit_view(credit_id), credit_id
        response = await self.http.get(f"/accounts/{ACCOUNT}/credit_balance")
        assert response.status_code == 200, response.text
        balance = decimal_json(response)
        assert {key: balance[key] for key in self.model.balance_view()} == (
            self.model.balance_view()
        )
        assert await books_problems(self.db, self.clock, self.org) == []

    async def step(self, op: tuple[Any, ...]) -> None:
        kind = op[0]
        if kind == "grant":
            _, value, priority, start, until, scope = op
            await self.grant(str(value), priority, start, until, SCOPES[scope])
        elif kind == "many_maximal":
            for _ in range(op[1]):
                await self.grant(str(LARGEST), 1, 0, None, None)
        elif kind == "hostile":
            await self.grant(op[1], 1, 0, None, None)
        elif kind in ("HOLD", "DEBIT"):
            await self.apply(kind, op[1], op[2], op[3])
        elif kind in ("capture", "release"):
            await self.settle(kind, op[1])
        elif kind == "void":
            await self.void(op[1])
        elif kind == "advance":
            await self.advance(op[1], op[2])
        else:
            raise AssertionError(kind)


async def _open_history(db: Database, clock: FixedClock) -> tuple[str, str]:
    org = f"prop-{datetime.now(UTC).timestamp()}-{id(clock)}"
    return org, await new_key(db, org=org)


async def run_history(db: Database, ops: list[Any]) -> None:
    clock = FixedClock(START)
    org, key = await _open_history(db, clock)
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=create_app(db, clock)),
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
                "account": {"id": ACCOUNT, "name": "Property account"},
            },
        )
        assert created.status_code == 201, created.text
        history = History(http, db, clock, org)
        for op in ops:
            await history.step(op)
            await history.compare_everything()


@settings(
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(st.lists(operation, min_size=1, max_size=12))
async def test_random_histories_match_the_reference_model(db: Database, ops: list[Any]) -> None:
    await run_history(db, ops)


async def test_sums_of_many_maximal_credits_are_exact(db: Database) -> None:
    """Twelve credits of the largest amount, partly held and debited: every total has 20
    digits before the point, and nothing is rounded."""
    items = [(ENTITIES[0], LARGEST), (ENTITIES[1], LARGEST), (ENTITIES[0], SMALLEST)]
    await run_history(
        db,
        [
            ("many_maximal", 12),
            ("grant", SMALLEST, 0, 0, None, 0),
            ("HOLD", "inv-a", items, None),
            ("DEBIT", "inv-b", items, None),
            ("void", 3),
            ("release", "inv-a"),
            ("advance", 24, True),
        ],
    )


async def test_a_hold_replaced_after_a_void_gives_the_voided_share_back(db: Database) -> None:
    """Re-holding a held invoice replaces it: what a voided credit held goes to its VOIDED
    line, and the new hold is paid from the credits still active."""
    one = [(ENTITIES[0], Decimal(30))]
    await run_history(
        db,
        [
            ("grant", Decimal(50), 0, 0, None, 0),
            ("grant", Decimal(50), 1, 0, None, 0),
            ("HOLD", "inv-a", one, None),
            ("void", 0),
            ("HOLD", "inv-a", one, None),
            ("capture", "inv-a"),
        ],
    )
