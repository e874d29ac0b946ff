"""Amounts across the whole range (0.0000000001 .. 999999999999999999.9999999999), and sums of
many of them, checked against exact answers computed here with Python integers of 10^-10
units: never with the code under test."""

import json
from datetime import UTC, datetime
from decimal import Decimal, localcontext
from typing import Any

import httpx
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from drawdown.api.app import create_app
from drawdown.clock import FixedClock
from drawdown.ledger.balance import BalanceTotals, contribution
from drawdown.ledger.credit import CreditAmounts, CreditStatus
from drawdown.ledger.money import (
    AmountError,
    TotalOverflow,
    add,
    check_amount,
    format_amount,
    sub,
    total,
)
from drawdown.store.database import Database
from tests.conftest import NOW, new_key
from tests.helpers import number_literal, post_raw
from tests.oracle import books_problems

SCALE = 10**10
MAX_UNITS = 10**28 - 1  # 999999999999999999.9999999999
TOTAL_LIMIT_UNITS = 10**38  # a total must stay below 10^28


def text_of(units: int) -> str:
    """Plain notation of `units` x 10^-10, written without Decimal."""
    sign = "-" if units < 0 else ""
    whole, fraction = divmod(abs(units), SCALE)
    text = str(whole)
    if fraction:
        text += "." + f"{fraction:010d}".rstrip("0")
    return sign + text


def decimal_of(units: int) -> Decimal:
    return Decimal(text_of(units))


# Every amount a caller may send, with the extremes and 18+10 digit values drawn often.
amount_units = st.one_of(
    st.integers(1, MAX_UNITS),
    st.sampled_from([1, MAX_UNITS, 10**27, 10**27 + 1, 5 * 10**27 + 1, SCALE, SCALE - 1]),
    st.integers(10**27, MAX_UNITS),
    st.integers(1, SCALE),
)


@st.composite
def written(draw: st.DrawFn, units: int) -> str:
    """`units` as a JSON number, in one of the notations a caller may use."""
    plain = text_of(units)
    style = draw(st.sampled_from(["plain", "trailing zeros", "exponent"]))
    if style == "trailing zeros" and "." in plain:
        return plain + "0" * draw(st.integers(1, 20))
    if style == "exponent":
        return f"{units}E-10"
    return plain


# ---- the rules in ledger/, under the money context ----


@given(st.lists(amount_units, min_size=1, max_size=60))
@example([MAX_UNITS] * 60)
def test_sums_of_amounts_are_exact(units: list[int]) -> None:
    assert total(decimal_of(u) for u in units) == decimal_of(sum(units))
    assert format_amount(total(decimal_of(u) for u in units)) == text_of(sum(units))


@given(amount_units, amount_units)
def test_differences_are_exact(first: int, second: int) -> None:
    assert sub(decimal_of(first), decimal_of(second)) == decimal_of(first - second)
    assert add(decimal_of(first), decimal_of(second)) == decimal_of(first + second)


@given(st.integers(1, 10**10))
def test_a_total_past_28_digits_raises_instead_of_rounding(extra: int) -> None:
    widest = decimal_of(TOTAL_LIMIT_UNITS - 1)  # 9999999999999999999999999999.9999999999
    assert format_amount(widest) == "9999999999999999999999999999.9999999999"
    with pytest.raises(TotalOverflow):
        add(widest, decimal_of(extra))
    with pytest.raises(TotalOverflow):
        total([widest, decimal_of(extra)])


@pytest.mark.parametrize(
    ("first", "second"),
    [
        (Decimal("1E+27"), Decimal("1E-12")),  # 40 (sum) and 39 (difference) digits
        (Decimal("1"), Decimal("1E-40")),
        (Decimal("1E+100"), Decimal("1")),
    ],
)
def test_arithmetic_that_would_round_raises(first: Decimal, second: Decimal) -> None:
    with pytest.raises(TotalOverflow):
        add(first, second)
    with pytest.raises(TotalOverflow):
        sub(first, second)


@given(amount_units, amount_units)
def test_the_callers_decimal_context_changes_nothing(first: int, second: int) -> None:
    with localcontext() as narrow:
        narrow.prec = 3
        assert add(decimal_of(first), decimal_of(second)) == decimal_of(first + second)
        assert format_amount(decimal_of(first)) == text_of(first)
        assert CreditAmounts(decimal_of(first), held=decimal_of(first)).available == 0


@given(amount_units, st.data())
def test_one_credits_contribution_is_exact(amount: int, data: st.DataObject) -> None:
    consumed = data.draw(st.integers(0, amount))
    held = data.draw(st.integers(0, amount - consumed))
    amounts = CreditAmounts(decimal_of(amount), decimal_of(consumed), decimal_of(held))
    assert amounts.available == decimal_of(amount - consumed - held)
    today = NOW.date()
    share = contribution(CreditStatus.ACTIVE, amounts, today, None, today)
    assert share == BalanceTotals(
        decimal_of(amount), decimal_of(amount - consumed), decimal_of(held), Decimal(0)
    )
    assert share.running_balance == decimal_of(amount - consumed - held)


@given(
    st.text("0123456789", min_size=1, max_size=40),
    st.integers(-60, 60),
)
@example("1" + "0" * 28 + "1", -29)  # 1.00000000000000000000000000001
@example("1", 1_000_000)
@example("1", -1_000_000)
def test_limits_are_judged_on_the_exact_value(digits: str, exponent: int) -> None:
    value = Decimal(f"{digits}E{exponent}")
    stripped = digits.lstrip("0")
    if not stripped:
        assert check_amount(value) == 0
        return
    trailing = len(stripped) - len(stripped.rstrip("0"))
    significant, power = stripped.rstrip("0"), exponent + trailing
    fraction_digits = max(0, -power)
    integer_digits = max(0, len(significant) + power)
    if fraction_digits <= 10 and integer_digits <= 18:
        checked = check_amount(value)
        assert checked == value
        assert checked.as_tuple().digits == tuple(int(d) for d in significant)
    else:
        with pytest.raises(AmountError):
            check_amount(value)


# ---- through the API, on the suite's engine ----


async def _client(db: Database, org: str) -> httpx.AsyncClient:
    key = await new_key(db, org=org)
    return httpx.AsyncClient(
        transport=httpx.ASGITransport(app=create_app(db, FixedClock(NOW))),
        base_url="http://drawdown.test",
        headers={"Authorization": f"Bearer {key}"},
    )


async def _account(http: httpx.AsyncClient) -> None:
    response = await http.post(
        "/customers",
        json={
            "id": "cust",
            "name": "Range Customer",
            "primaryEmail": "r@example.test",
            "address": {},
            "account": {"id": "acc", "name": "Range account"},
        },
    )
    assert response.status_code == 201, response.text


def _grant_text(amount: str, **extra: Any) -> str:
    body = {"accountId": "acc", "purpose": "PREPAID_CREDIT", "effectiveFrom": "2026-01-01"}
    body.update(extra)
    return json.dumps(body)[:-1] + f', "priority": 1, "creditAmount": {amount}}}'


async def _balance_literals(http: httpx.AsyncClient) -> dict[str, str]:
    response = await http.get("/accounts/acc/credit_balance")
    assert response.status_code == 200, response.text
    keys = ("activeCredits", "availableBalance", "runningBalance", "inapplicableCredits")
    return {key: number_literal(response.text, key) for key in keys}


@settings(
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(st.lists(amount_units, min_size=1, max_size=6), st.data())
@example([MAX_UNITS, MAX_UNITS], None)
@example([5 * 10**27 + 1], None)  # 500000000000000000.0000000001, then a HOLD of 1
async def test_grants_and_a_hold_across_the_range_are_exact_through_the_api(
    db: Database, units: list[int], data: st.DataObject | None
) -> None:
    org = f"range-{datetime.now(UTC).timestamp()}-{id(units)}"
    async with await _client(db, org) as http:
        await _account(http)
        for amount in units:
            text = data.draw(written(amount)) if data else text_of(amount)
            response = await post_raw(http, "/credits", _grant_text(text))
            assert response.status_code == 200, response.text
            assert number_literal(response.text, "creditAmount") == text_of(amount)
        granted = sum(units)
        assert await _balance_literals(http) == {
            "activeCredits": text_of(granted),
            "availableBalance": text_of(granted),
            "runningBalance": text_of(granted),
            "inapplicableCredits": "0",
        }
        hold = data.draw(st.integers(1, min(granted, MAX_UNITS))) if data else SCALE
        response = await post_raw(
            http,
            "/accounts/acc/credit_applications",
            '{"invoiceId": "inv-1", "mode": "HOLD", "lineItems": [{"entityId": "um.a",'
            f' "entityType": "USAGE_METER_RATE_CARD", "amount": {text_of(hold)}}}]}}',
        )
        assert response.status_code == 200, response.text
        assert number_literal(response.text, "appliedAmount") == text_of(hold)
        assert number_literal(response.text, "remainingAmount") == "0"
        balance = await _balance_literals(http)
        assert balance["availableBalance"] == text_of(granted)
        assert balance["runningBalance"] == text_of(granted - hold)
        assert await books_problems(db, FixedClock(NOW), org) == []


async def test_many_maximal_credits_sum_exactly_through_the_api(db: Database) -> None:
    """Three batches of 50 credits of the largest amount, plus one of the smallest: a total
    with 21 digits before the point and all 10 after."""
    org = f"range-many-{datetime.now(UTC).timestamp()}"
    largest = text_of(MAX_UNITS)
    async with await _client(db, org) as http:
        await _account(http)
        batch = ",".join([_grant_text(largest)] * 50)
        for _ in range(3):
            response = await post_raw(http, "/credits", f'{{"creditRequests": [{batch}]}}')
            assert response.status_code == 200, response.text
        response = await post_raw(http, "/credits", _grant_text("0.0000000001"))
        assert response.status_code == 200, response.text
        expected = text_of(150 * MAX_UNITS + 1)
        assert expected == "149999999999999999999.9999999851"
        assert (await _balance_literals(http))["activeCredits"] == expected
        response = await post_raw(
            http,
            "/accounts/acc/credit_applications",
            '{"invoiceId": "inv-1", "mode": "DEBIT", "lineItems": ['
            + ",".join(
                f'{{"entityId": "um.{i}", "entityType": "USAGE_METER_RATE_CARD",'
                f' "amount": {largest}}}'
                for i in range(40)
            )
            + "]}",
        )
        assert response.status_code == 200, response.text
        assert number_literal(response.text, "appliedAmount") == text_of(40 * MAX_UNITS)
        balance = await _balance_literals(http)
        assert balance["availableBalance"] == text_of(110 * MAX_UNITS + 1)
        assert await books_problems(db, FixedClock(NOW), org) == []
