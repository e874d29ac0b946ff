"""The book at its edges, through the API: what is left below one unit still closes, and an
account's balance is recounted on the first day any of its credits changes class."""

from datetime import timedelta

import httpx

from drawdown.clock import FixedClock
from drawdown.store.database import Database
from tests.helpers import decimal_json, grant, make_account, post_raw
from tests.oracle import assert_books_balance


async def _balance(client: httpx.AsyncClient) -> dict[str, object]:
    response = await client.get("/accounts/acc-1/credit_balance")
    assert response.status_code == 200, response.text
    return dict(decimal_json(response))


async def _debit(client: httpx.AsyncClient, literal: str) -> httpx.Response:
    item = f'{{"entityId":"um.a","entityType":"USAGE_METER_RATE_CARD","amount":{literal}}}'
    body = f'{{"invoiceId":"inv-1","mode":"DEBIT","lineItems":[{item}]}}'
    return await post_raw(client, "/accounts/acc-1/credit_applications", body)


async def test_a_void_closes_less_than_one_unit(
    client: httpx.AsyncClient, db: Database, clock: FixedClock, org_name: str
) -> None:
    await make_account(client)
    credit = await grant(client, amount=10)
    assert (await _debit(client, "9.5")).status_code == 200
    assert (await client.post(f"/credits/{credit['id']}/void")).status_code == 200
    voided = decimal_json(await client.get(f"/credits/{credit['id']}"))
    assert voided["status"] == "VOIDED"
    assert [(t["transactionType"], str(t["amount"])) for t in voided["transactions"]] == [
        ("CREDITED", "10"),
        ("DEBITED", "9.5"),
        ("VOIDED", "0.5"),
    ]
    await assert_books_balance(db, clock, org_name)


async def test_an_expiry_closes_the_smallest_amount(
    client: httpx.AsyncClient, db: Database, clock: FixedClock, org_name: str
) -> None:
    await make_account(client)
    credit = await grant(client, amount=1, effectiveUntil="2026-11-24")
    assert (await _debit(client, "0.9999999999")).status_code == 200
    clock.advance(timedelta(days=1))
    expired = decimal_json(await client.get(f"/credits/{credit['id']}"))
    assert expired["status"] == "EXPIRED"
    assert [(t["transactionType"], str(t["amount"])) for t in expired["transactions"]] == [
        ("CREDITED", "1"),
        ("DEBITED", "0.9999999999"),
        ("EXPIRED", "1E-10"),
    ]
    await assert_books_balance(db, clock, org_name)


async def test_a_later_grant_without_expiry_keeps_the_earlier_credits_last_day(
    client: httpx.AsyncClient, db: Database, clock: FixedClock, org_name: str
) -> None:
    """The balance must be recounted the day after the first credit's last day, however many
    credits without an end were granted after it."""
    await make_account(client)
    await grant(client, amount=10, effectiveUntil="2026-11-25")
    await grant(client, amount=5)
    await grant(client, amount=7, effectiveFrom="2026-12-24")
    before = await _balance(client)
    assert (before["activeCredits"], before["availableBalance"]) == (22, 15)
    assert before["inapplicableCredits"] == 7
    clock.advance(timedelta(days=2))
    after = await _balance(client)
    assert (after["activeCredits"], after["availableBalance"], after["runningBalance"]) == (
        12,
        5,
        5,
    )
    clock.advance(timedelta(days=30))
    later = await _balance(client)
    assert (later["availableBalance"], later["inapplicableCredits"]) == (12, 0)
    await assert_books_balance(db, clock, org_name)


async def test_each_recount_keeps_the_next_day_a_credit_changes_class(
    client: httpx.AsyncClient, db: Database, clock: FixedClock, org_name: str
) -> None:
    """Only balance reads, so nothing but the account's kept day can trigger each recount."""
    await make_account(client)
    await grant(client, amount=7, effectiveFrom="2026-12-24")
    await grant(client, amount=10, effectiveUntil="2026-11-25")
    await grant(client, amount=3, effectiveUntil="2026-11-30")
    await grant(client, amount=5)
    expected = [
        (2, (15, 8, 7)),  # 2026-11-26: the 10 has expired
        (5, (12, 5, 7)),  # 2026-12-01: the 3 has expired
        (30, (12, 12, 0)),  # 2026-12-31: the 7 is in effect
    ]
    for days, (active, available, inapplicable) in expected:
        clock.advance(timedelta(days=days))
        balance = await _balance(client)
        got = (balance["activeCredits"], balance["availableBalance"])
        assert (*got, balance["inapplicableCredits"]) == (active, available, inapplicable)
        await assert_books_balance(db, clock, org_name)
