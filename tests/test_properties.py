"""Random histories of grants, holds, re-holds, debits, captures, releases, voids, hostile
amounts and clock moves (across midnight and past expiries, with and without the sweep), and of
the wallet behind the credits: top-ups, applications with and without it, deactivation with
holds, and top-ups racing debits.

After every step the API must agree with the independent reference model
(tests/reference_model.py) to the last digit: the answer's status code and body, every credit's
status, amounts and ledger lines, the list of credits and the account's balance; and
`drawdown verify` must find the books sound. Amounts span the whole allowed range, from
0.0000000001 to 999999999999999999.9999999999, so sums of many maximal credits are exercised."""

import asyncio
import copy
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
    st.sampled_from([True, True, False]),  # useWallet
)
topup_op = st.tuples(st.just("topup"), amounts)
wallet_status_op = st.tuples(st.just("wallet_status"), st.sampled_from(["ACTIVE", "INACTIVE"]))
race_op = st.tuples(st.just("race"), amounts, st.sampled_from(INVOICES), line_items)
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
    topup_op,
    topup_op,
    wallet_status_op,
    race_op,
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

    async def apply(
        self,
        mode: str,
        invoice: str,
        items: list[Any],
        as_of: int | None,
        use_wallet: bool = True,
    ) -> None:
        as_of_day = None if as_of is None else self.today + timedelta(days=as_of)
        response = await self._post_application(mode, invoice, items, as_of_day, use_wallet)
        model_items = tuple(Item(e, t, units(a)) for (e, t), a in items)
        answer = self.model.apply(invoice, mode, as_of_day, model_items, use_wallet)
        self._compare(response, answer)

    async def _post_application(
        self, mode: str, invoice: str, items: list[Any], as_of: date | None, use_wallet: bool
    ) -> httpx.Response:
        lines = ",".join(
            f'{{"entityId":"{e}","entityType":"{t}","amount":{a}}}' for (e, t), a in items
        )
        as_of_field = f'"asOf":"{as_of.isoformat()}",' if as_of else ""
        wallet_field = "" if use_wallet else '"useWallet":false,'
        text = (
            f'{{"invoiceId":"{invoice}","mode":"{mode}",{as_of_field}{wallet_field}'
            f'"lineItems":[{lines}]}}'
        )
        return await post_raw(self.http, f"/accounts/{ACCOUNT}/credit_applications", text)

    async def _post_top_up(self, literal: str) -> httpx.Response:
        return await post_raw(
            self.http, f"/accounts/{ACCOUNT}/wallet_topup", f'{{"topupAmount": {literal}}}'
        )

    async def top_up(self, value: Decimal) -> None:
        response = await self._post_top_up(str(value))
        self._topped_up(response, value)

    def _topped_up(self, response: httpx.Response, value: Decimal) -> None:
        """A top-up of an amount the model can hold: 200 with the wallet as the model has it,
        or 409 when the wallet's total would pass 28 digits."""
        wallet = self.model.wallet
        topped = (wallet.topped_up if wallet else 0) + units(value)
        if topped >= 10**38:  # 28 digits before the point, in units of 10^-10
            assert response.status_code == 409, response.text
            return
        assert response.status_code == 200, response.text
        self.model.top_up(units(value), response.json()["id"])
        body = decimal_json(response)
        assert {key: body[key] for key in self.model.wallet_view()} == self.model.wallet_view()

    async def set_wallet_status(self, status: str) -> None:
        response = await self.http.patch(f"/accounts/{ACCOUNT}/wallet", json={"status": status})
        assert response.status_code == self.model.set_wallet_status(status).status, response.text

    async def race(self, value: Decimal, invoice: str, items: list[Any]) -> None:
        """A top-up and a DEBIT sent at once: the answers must be those of one order or the
        other, and the books then those of that order."""
        top_up, debit = await asyncio.gather(
            self._post_top_up(str(value)),
            self._post_application("DEBIT", invoice, items, None, True),
        )
        model_items = tuple(Item(e, t, units(a)) for (e, t), a in items)
        orders = []
        for top_up_first in (True, False):
            model = copy.deepcopy(self.model)
            trial = History(self.http, self.db, self.clock, self.org)
            trial.model = model
            try:
                if top_up_first:
                    trial._topped_up(top_up, value)
                answer = model.apply(invoice, "DEBIT", None, model_items)
                trial._compare(debit, answer)
                if not top_up_first:
                    trial._topped_up(top_up, value)
            except AssertionError:
                continue
            orders.append(model)
        assert orders, (top_up.text, debit.text)
        self.model = orders[0]

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
        await self.compare_wallet()
        assert await books_problems(self.db, self.clock, self.org) == []

    async def compare_wallet(self) -> None:
        response = await self.http.get(f"/accounts/{ACCOUNT}/wallet")
        if self.model.wallet is None:
            assert response.status_code == 404, response.text
            return
        assert response.status_code == 200, response.text
        wallet = decimal_json(response)
        assert {key: wallet[key] for key in self.model.wallet_view()} == self.model.wallet_view()
        listed: list[tuple[object, ...]] = []
        token = None
        while True:
            params = {"pageSize": 3, **({"nextToken": token} if token else {})}
            page = await self.http.get(f"/accounts/{ACCOUNT}/wallet/entries", params=params)
            assert page.status_code == 200, page.text
            for entry in decimal_json(page)["data"]:
                listed.append(
                    (
                        entry["transactionType"],
                        entry["status"],
                        entry["amount"],
                        entry["closingBalance"],
                        entry["entityId"],
                    )
                )
            token = page.json().get("nextToken")
            if not token:
                break
        assert listed == self.model.entries_view()

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
            await self.apply(kind, op[1], op[2], op[3], *op[4:])
        elif kind == "topup":
            await self.top_up(op[1])
        elif kind == "wallet_status":
            await self.set_wallet_status(op[1])
        elif kind == "race":
            await self.race(op[1], op[2], op[3])
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


async def test_holds_spanning_credits_and_the_wallet_captured_and_released(db: Database) -> None:
    """A HOLD paid partly by a credit and partly by the wallet; one captured, one released, one
    replaced; the wallet deactivated while it holds, then its holds settled."""
    two = [(ENTITIES[0], Decimal(30)), (ENTITIES[1], Decimal("12.5"))]
    await run_history(
        db,
        [
            ("grant", Decimal(20), 0, 0, None, 0),
            ("topup", Decimal(50)),
            ("HOLD", "inv-a", two, None, True),
            ("HOLD", "inv-b", [(ENTITIES[0], Decimal(10))], None, True),
            ("wallet_status", "INACTIVE"),
            ("HOLD", "inv-c", [(ENTITIES[0], Decimal(5))], None, True),
            ("capture", "inv-a"),
            ("release", "inv-b"),
            ("wallet_status", "ACTIVE"),
            ("HOLD", "inv-c", [(ENTITIES[0], Decimal(7))], None, True),
            ("HOLD", "inv-c", [(ENTITIES[0], Decimal(8))], None, False),
            ("race", Decimal(3), "inv-b", [(ENTITIES[1], Decimal(4))]),
            ("advance", 30, True),
        ],
    )


async def test_the_widest_top_ups_and_debits_stay_exact(db: Database) -> None:
    widest = [(ENTITIES[0], LARGEST), (ENTITIES[1], LARGEST)]
    await run_history(
        db,
        [
            ("topup", LARGEST),
            ("topup", LARGEST),
            ("topup", SMALLEST),
            ("DEBIT", "inv-a", widest, None, True),
            ("race", LARGEST, "inv-b", widest),
        ],
    )
