"""Money at its limits, one regression test per finding of issue 7: digits judged on the exact
value, absurd exponents refused cheaply, the largest amounts summed exactly on both engines,
totals past 28 digits refused with a clear conflict, and the widest totals written exactly."""

import json
import time
from datetime import date
from decimal import Decimal
from typing import Any

import httpx
import msgspec
import pytest
from sqlalchemy import select, update

from drawdown.api import render
from drawdown.api.app import create_app
from drawdown.clock import FixedClock
from drawdown.errors import Conflict
from drawdown.ledger.balance import BalanceTotals
from drawdown.ledger.book import Book
from drawdown.ledger.credit import CreditAmounts, CreditStatus
from drawdown.ledger.money import add
from drawdown.ledger.records import AccountRecord, CreditRecord
from drawdown.services import credits as service
from drawdown.store import ledger
from drawdown.store.database import Database
from drawdown.store.tables import accounts, organizations
from tests.conftest import ENGINE, NOW
from tests.helpers import apply, details, grant, grant_body, make_account, number_literal, post_raw
from tests.oracle import assert_books_balance

LARGEST = "999999999999999999.9999999999"
WIDEST_TOTAL = "9999999999999999999999999999.9999999999"


def _grant_with_amount(literal: str) -> str:
    body = msgspec.json.encode(grant_body(amount=0)).decode()
    return body.replace('"creditAmount":0', f'"creditAmount":{literal}')


@pytest.mark.parametrize(
    "literal",
    [
        "1.00000000000000000000000000001",  # 29 decimals: was rounded to 1 and accepted
        "0.00000000001",
        "1234567890123456789",
        "1000000000000000000000000000000",  # an integer literal past int64
        "1E+1000000",  # was a 500
        "1E-1000000",
        "-1E+1000000",
        "1e400",
        "9" * 5000,
    ],
)
async def test_amounts_past_the_limits_are_a_400_naming_the_field(
    client: httpx.AsyncClient, literal: str
) -> None:
    await make_account(client)
    started = time.perf_counter()
    response = await post_raw(client, "/credits", _grant_with_amount(literal))
    elapsed = time.perf_counter() - started
    assert response.status_code == 400, response.text
    assert list(response.json()) == ["message"]
    if len(literal) < 100:
        assert "creditAmount" in response.json()["message"]
    assert elapsed < 1, f"refusing {literal[:20]} took {elapsed:.2f}s"
    balance = await client.get("/accounts/acc-1/credit_balance")
    assert number_literal(balance.text, "activeCredits") == "0"


@pytest.mark.parametrize("literal", ["1.00000000000000000000000000001", "1E+1000000"])
async def test_line_item_amounts_past_the_limits_are_a_400_naming_the_field(
    client: httpx.AsyncClient, literal: str
) -> None:
    await make_account(client)
    await grant(client, amount=10)
    response = await post_raw(
        client,
        "/accounts/acc-1/credit_applications",
        '{"invoiceId": "inv-1", "mode": "HOLD", "lineItems": [{"entityId": "um.a",'
        f' "entityType": "USAGE_METER_RATE_CARD", "amount": {literal}}}]}}',
    )
    assert response.status_code == 400, response.text
    assert "lineItems" in response.json()["message"] and "amount" in response.json()["message"]


@pytest.mark.parametrize(
    ("literal", "stored"),
    [("1.000", "1"), ("1E+2", "100"), ("1.50000000000000000000000000000", "1.5")],
)
async def test_trailing_zeros_do_not_count_against_the_limits(
    client: httpx.AsyncClient, literal: str, stored: str
) -> None:
    await make_account(client)
    response = await post_raw(client, "/credits", _grant_with_amount(literal))
    assert response.status_code == 200, response.text
    assert number_literal(response.text, "creditAmount") == stored


async def test_two_and_many_grants_of_the_largest_amount_sum_exactly(
    client: httpx.AsyncClient, db: Database, clock: FixedClock, org_name: str
) -> None:
    """Was a 500 on PostgreSQL (NUMERIC(28,10) totals) and a rounded balance on SQLite."""
    await make_account(client)
    first = await post_raw(client, "/credits", _grant_with_amount(LARGEST))
    second = await post_raw(client, "/credits", _grant_with_amount(LARGEST))
    assert first.status_code == second.status_code == 200, second.text
    balance = await client.get("/accounts/acc-1/credit_balance")
    assert number_literal(balance.text, "activeCredits") == "1999999999999999999.9999999998"
    assert number_literal(balance.text, "availableBalance") == "1999999999999999999.9999999998"
    credit = await client.get(f"/credits/{first.json()['id']}")
    assert number_literal(credit.text, "creditAmount") == LARGEST
    batch = ",".join([_grant_with_amount(LARGEST)] * 48)
    response = await post_raw(client, "/credits", f'{{"creditRequests": [{batch}]}}')
    assert response.status_code == 200, response.text
    balance = await client.get("/accounts/acc-1/credit_balance")
    assert number_literal(balance.text, "runningBalance") == "49999999999999999999.999999995"
    await assert_books_balance(db, clock, org_name)


async def test_a_hold_of_1_on_the_widest_fraction_leaves_the_balance_exact(
    client: httpx.AsyncClient, db: Database, clock: FixedClock, org_name: str
) -> None:
    """Was 2E-10 off, and `verify` failed."""
    await make_account(client)
    response = await post_raw(
        client, "/credits", _grant_with_amount("500000000000000000.0000000001")
    )
    assert response.status_code == 200, response.text
    held = await apply(client, "inv-1", [1])
    assert held.status_code == 200, held.text
    balance = await client.get("/accounts/acc-1/credit_balance")
    assert number_literal(balance.text, "availableBalance") == "500000000000000000.0000000001"
    assert number_literal(balance.text, "runningBalance") == "499999999999999999.0000000001"
    credit = await details(client, response.json()["id"])
    assert credit["holdAmount"] == 1
    await assert_books_balance(db, clock, org_name)


async def _tamper_totals(db: Database, org_name: str, **totals: Decimal) -> AccountRecord:
    """Set the kept totals of the organization's account acc-1 directly; return the account."""
    async with db.write() as conn:
        query = select(organizations.c.seq).where(organizations.c.name == org_name)
        org_seq = (await conn.execute(query)).scalar_one()
        mine = (accounts.c.org_seq == org_seq) & (accounts.c.id == "acc-1")
        if totals:
            await conn.execute(update(accounts).where(mine).values(**totals))
        row = (await conn.execute(select(accounts).where(mine))).one()
    return AccountRecord.from_row(row)


async def test_the_widest_totals_round_trip_exactly_through_the_api(
    client: httpx.AsyncClient, db: Database, clock: FixedClock, org_name: str
) -> None:
    """28 digits before the point and 10 after, 1E+27 and the smallest amount: written by the
    API (PostgreSQL's JSON path or the Python renderer) exactly as `format_amount` writes."""
    await make_account(client)
    account = await _tamper_totals(
        db,
        org_name,
        bal_active_amount=Decimal(WIDEST_TOTAL),
        bal_applicable_left=Decimal("1E+27"),
        bal_applicable_held=Decimal("0.0000000001"),
        bal_inapplicable_left=Decimal("1234567890123456789012345678.9"),
    )
    response = await client.get("/accounts/acc-1/credit_balance")
    assert response.status_code == 200, response.text
    assert number_literal(response.text, "activeCredits") == WIDEST_TOTAL
    assert number_literal(response.text, "availableBalance") == "1" + "0" * 27
    assert number_literal(response.text, "runningBalance") == "9" * 27 + ".9999999999"
    assert number_literal(response.text, "inapplicableCredits") == "1234567890123456789012345678.9"
    python = _literals(msgspec.json.encode(render.balance(account)))
    if ENGINE == "postgresql":
        fast = await service.balance_json(db, account.org_seq, "acc-1", clock)
        assert _literals(fast) == python
    assert _literals(response.content) == python


@pytest.mark.skipif(ENGINE != "postgresql", reason="the JSON path is PostgreSQL's")
async def test_details_json_writes_the_largest_amounts_as_the_renderer_does(
    client: httpx.AsyncClient, db: Database, clock: FixedClock, org_name: str
) -> None:
    await make_account(client)
    response = await post_raw(client, "/credits", _grant_with_amount(LARGEST))
    assert response.status_code == 200, response.text
    credit_id = response.json()["id"]
    debited = await post_raw(
        client,
        "/accounts/acc-1/credit_applications",
        '{"invoiceId": "inv-1", "mode": "DEBIT", "lineItems": [{"entityId": "um.a",'
        ' "entityType": "USAGE_METER_RATE_CARD", "amount": 1E+17}]}',
    )
    assert debited.status_code == 200, debited.text
    held = await post_raw(
        client,
        "/accounts/acc-1/credit_applications",
        '{"invoiceId": "inv-2", "mode": "HOLD", "lineItems": [{"entityId": "um.a",'
        ' "entityType": "USAGE_METER_RATE_CARD", "amount": 0.0000000001}]}',
    )
    assert held.status_code == 200, held.text
    account = await _tamper_totals(db, org_name)  # changes nothing: finds the account
    async with db.read() as conn:
        record = await ledger.find_credit(conn, account.org_seq, credit_id)
        assert record is not None
        lines = await ledger.transactions_of(conn, record)
    python = _literals(
        msgspec.json.encode(render.credit_details(record, lines, clock.now().date()))
    )
    fast = _literals(await service.credit_details_json(db, account.org_seq, credit_id, clock))
    assert fast == python
    assert (fast["creditAmount"], fast["consumedAmount"], fast["holdAmount"]) == (
        LARGEST,
        "100000000000000000",
        "0.0000000001",
    )


def _literals(text: str | bytes) -> Any:
    """The JSON with every number kept as the literal text written."""
    return json.loads(text, parse_float=str, parse_int=str)


async def test_a_total_past_28_digits_is_a_409_that_changes_nothing(
    client: httpx.AsyncClient, db: Database, org_name: str
) -> None:
    await make_account(client)
    credit = await grant(client, amount=5)
    await _tamper_totals(db, org_name, bal_applicable_held=Decimal(WIDEST_TOTAL))
    response = await apply(client, "inv-1", [1])
    assert response.status_code == 409, response.text
    assert response.json() == {
        "message": "the account's total would exceed 28 digits before the decimal point; "
        "nothing was changed"
    }
    assert (await details(client, credit["id"]))["holdAmount"] == 0
    missing = await client.get("/accounts/acc-1/credit_applications/inv-1")
    assert missing.status_code == 404


def test_the_book_refuses_a_total_past_28_digits() -> None:
    account = AccountRecord(
        seq=1,
        org_seq=1,
        id="acc",
        customer_seq=1,
        customer_id="cust",
        name="Account",
        invoice_currency="USD",
        status="ACTIVE",
        details={},
        created_at=NOW,
        updated_at=NOW,
        totals=BalanceTotals(Decimal(WIDEST_TOTAL), Decimal(0), Decimal(0), Decimal(0)),
        as_of=NOW.date(),
        valid_through=None,
        balance_updated_at=NOW,
    )
    credit = CreditRecord(
        seq=1,
        org_seq=1,
        account_seq=1,
        id="cred.1",
        account_id="acc",
        customer_id="cust",
        credit_unit="USD",
        purpose="PREPAID_CREDIT",
        applicable_entity_ids=None,
        effective_from=date(2026, 1, 1),
        effective_until=None,
        priority=1,
        grantor_id=None,
        idempotency_key=None,
        request_hash="",
        status=CreditStatus.ACTIVE,
        amounts=CreditAmounts(Decimal("0.0000000001")),
        created_at=NOW,
        updated_at=NOW,
    )
    book = Book(account, NOW)
    with pytest.raises(Conflict, match="28 digits before the decimal point"):
        book.added(credit)
    assert book.account.totals.active_amount == Decimal(WIDEST_TOTAL)
    assert account.totals.active_amount == Decimal(WIDEST_TOTAL)


async def test_a_total_overflow_outside_the_book_is_a_409(db: Database, clock: FixedClock) -> None:
    """Any money arithmetic that cannot be exact ends as a 409 `{"message"}`, never a 500."""
    app = create_app(db, clock)

    async def overflowing() -> None:
        add(Decimal(WIDEST_TOTAL), Decimal(LARGEST))

    app.add_api_route("/overflow", overflowing)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://drawdown.test") as http:
        response = await http.get("/overflow")
    assert response.status_code == 409
    assert response.json() == {
        "message": "a total would exceed 28 digits before the decimal point; nothing was changed"
    }
