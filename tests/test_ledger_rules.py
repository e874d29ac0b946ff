"""The pure rules of ledger/, one edge at a time: a credit's amounts and status, its
contribution to the balance on each side of its days, eligibility and the drawdown order.

These are the tests `make mutation` leans on: each pins one comparison, sign or branch so that
changing it fails a test."""

import string
import time
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

import pytest

from drawdown.ledger.allocation import (
    Candidate,
    EntityType,
    LineAllocation,
    LineItem,
    allocate,
    applies_to,
    drawdown_key,
    in_effect,
)
from drawdown.ledger.balance import (
    NO_TOTALS,
    BalanceTotals,
    contribution,
    earliest,
    last_stable_day,
)
from drawdown.ledger.credit import (
    CreditAmounts,
    CreditStatus,
    effective_status,
    is_past_until,
    status_after_change,
    void_refusal,
)
from drawdown.ledger.ids import new_id
from drawdown.ledger.money import ZERO, AmountError, check_amount

TODAY = date(2026, 11, 24)
YESTERDAY = TODAY - timedelta(days=1)
TOMORROW = TODAY + timedelta(days=1)
CREATED = datetime(2026, 1, 1, tzinfo=UTC)
D = Decimal


def amounts(
    credit: str = "100", consumed: str = "0", held: str = "0", expired: str = "0", voided: str = "0"
) -> CreditAmounts:
    return CreditAmounts(D(credit), D(consumed), D(held), D(expired), D(voided))


# -- one credit's amounts -------------------------------------------------------------------------


def test_available_is_what_no_part_takes() -> None:
    assert amounts("100", "10", "20", "30", "15").available == D(25)
    assert amounts("100", "1").available == D(99)
    assert amounts("100", held="1").available == D(99)
    assert amounts("100", expired="1").available == D(99)
    assert amounts("100", voided="1").available == D(99)
    assert CreditAmounts(D(7)).available == D(7)


def test_available_is_exact_at_the_largest_amount() -> None:
    largest = "999999999999999999.9999999999"
    assert amounts(largest, consumed="0.0000000001").available == D("999999999999999999.9999999998")


def test_past_until_begins_the_day_after() -> None:
    assert not is_past_until(None, TODAY)
    assert not is_past_until(TODAY, TODAY)
    assert not is_past_until(TOMORROW, TODAY)
    assert is_past_until(YESTERDAY, TODAY)


@pytest.mark.parametrize(
    ("stored", "until", "shown"),
    [
        (CreditStatus.ACTIVE, YESTERDAY, CreditStatus.EXPIRED),
        (CreditStatus.ACTIVE, TODAY, CreditStatus.ACTIVE),
        (CreditStatus.ACTIVE, None, CreditStatus.ACTIVE),
        (CreditStatus.VOIDED, YESTERDAY, CreditStatus.VOIDED),
        (CreditStatus.CONSUMED, YESTERDAY, CreditStatus.CONSUMED),
        (CreditStatus.EXPIRED, YESTERDAY, CreditStatus.EXPIRED),
    ],
)
def test_a_read_never_shows_active_past_the_last_day(
    stored: CreditStatus, until: date | None, shown: CreditStatus
) -> None:
    assert effective_status(stored, until, TODAY) is shown


@pytest.mark.parametrize(
    ("stored", "parts", "after"),
    [
        (CreditStatus.ACTIVE, amounts("100", "100"), CreditStatus.CONSUMED),
        (CreditStatus.ACTIVE, amounts("100", "99.9999999999"), CreditStatus.ACTIVE),
        (CreditStatus.ACTIVE, amounts("100", "0", "100"), CreditStatus.ACTIVE),
        (CreditStatus.VOIDED, amounts("100", "100"), CreditStatus.VOIDED),
        (CreditStatus.EXPIRED, amounts("100", "100"), CreditStatus.EXPIRED),
    ],
)
def test_only_an_active_credit_consumed_whole_becomes_consumed(
    stored: CreditStatus, parts: CreditAmounts, after: CreditStatus
) -> None:
    assert status_after_change(stored, parts) is after


def test_void_refusals_say_why() -> None:
    assert void_refusal(CreditStatus.ACTIVE) is None
    assert void_refusal(CreditStatus.VOIDED) == "the credit is already voided"
    assert void_refusal(CreditStatus.EXPIRED) == "the credit has expired; nothing is left to void"
    assert (
        void_refusal(CreditStatus.CONSUMED)
        == "the credit is fully consumed; nothing is left to void"
    )


# -- the balance ----------------------------------------------------------------------------------


def test_an_active_credit_in_effect_counts_what_is_left_and_held() -> None:
    share = contribution(
        CreditStatus.ACTIVE, amounts("100", "30", "20"), YESTERDAY, TOMORROW, TODAY
    )
    assert share == BalanceTotals(D(100), D(70), D(20), ZERO)
    assert share.available_balance == D(70)
    assert share.running_balance == D(50)


def test_a_credit_starting_today_or_ending_today_is_in_effect() -> None:
    starts = contribution(CreditStatus.ACTIVE, amounts("10", "1", "2"), TODAY, None, TODAY)
    ends = contribution(CreditStatus.ACTIVE, amounts("10", "1", "2"), YESTERDAY, TODAY, TODAY)
    assert starts == ends == BalanceTotals(D(10), D(9), D(2), ZERO)


def test_a_credit_not_yet_in_effect_is_inapplicable() -> None:
    share = contribution(CreditStatus.ACTIVE, amounts("60", "5", "7"), TOMORROW, None, TODAY)
    assert share == BalanceTotals(D(60), ZERO, ZERO, D(55))
    assert share.running_balance == ZERO


@pytest.mark.parametrize(
    "status", [CreditStatus.CONSUMED, CreditStatus.EXPIRED, CreditStatus.VOIDED]
)
def test_a_closed_credit_contributes_nothing(status: CreditStatus) -> None:
    assert contribution(status, amounts("10", "1", "2"), YESTERDAY, None, TODAY) is NO_TOTALS
    assert contribution(status, amounts("10"), TOMORROW, None, TODAY) is NO_TOTALS


def test_an_active_credit_past_its_last_day_contributes_nothing() -> None:
    assert contribution(CreditStatus.ACTIVE, amounts("10"), YESTERDAY, YESTERDAY, TODAY) == (
        NO_TOTALS
    )


def test_totals_add_and_subtract_field_by_field() -> None:
    one = BalanceTotals(D(1), D(2), D(3), D(4))
    other = BalanceTotals(D(10), D(20), D(30), D(40))
    assert one + other == BalanceTotals(D(11), D(22), D(33), D(44))
    assert other - one == BalanceTotals(D(9), D(18), D(27), D(36))
    assert BalanceTotals(ZERO, ZERO, ZERO, ZERO) == NO_TOTALS
    assert BalanceTotals(D(0), D(9), D(4), D(0)).running_balance == D(5)


def test_totals_of_many_maximal_credits_are_exact() -> None:
    largest = D("999999999999999999.9999999999")
    total = NO_TOTALS
    for _ in range(3):
        total += BalanceTotals(largest, largest, ZERO, ZERO)
    assert total.active_amount == D("2999999999999999999.9999999997")


def test_last_stable_day_is_the_day_before_a_change_of_class() -> None:
    active = CreditStatus.ACTIVE
    assert last_stable_day(active, TOMORROW, None, TODAY) == TODAY
    assert last_stable_day(active, TOMORROW, TOMORROW, TODAY) == TODAY
    assert last_stable_day(active, YESTERDAY, TOMORROW, TODAY) == TOMORROW
    assert last_stable_day(active, TODAY, TODAY, TODAY) == TODAY
    assert last_stable_day(active, YESTERDAY, None, TODAY) is None
    assert last_stable_day(active, YESTERDAY, YESTERDAY, TODAY) is None
    assert last_stable_day(CreditStatus.VOIDED, TOMORROW, TOMORROW, TODAY) is None


def test_earliest_ignores_none() -> None:
    assert earliest(None, None) is None
    assert earliest(TODAY, None) == TODAY
    assert earliest(None, TODAY) == TODAY
    assert earliest(TODAY, TOMORROW) == TODAY
    assert earliest(TOMORROW, TODAY) == TODAY


# -- eligibility and the drawdown order -----------------------------------------------------------


def candidate(
    credit_id: str,
    available: str = "100",
    priority: int = 1,
    effective_from: date = YESTERDAY,
    effective_until: date | None = None,
    created_at: datetime = CREATED,
    scope: list[str] | None = None,
) -> Candidate:
    return Candidate(
        credit_id, D(available), priority, effective_from, effective_until, created_at, scope
    )


USAGE = LineItem("um.api", EntityType.USAGE_METER_RATE_CARD, D(10))
FIXED = LineItem("ff.seat", EntityType.FIXED_FEE_RATE_CARD, D(10))


@pytest.mark.parametrize(
    ("scope", "usage", "fixed"),
    [
        (None, True, True),
        ([], True, True),
        (["um.api"], True, False),
        (["ff.seat"], False, True),
        (["other"], False, False),
        (["ALL_USAGE_METER_RATE_CARDS"], True, False),
        (["ALL_FIXED_FEE_RATE_CARDS"], False, True),
        (["ALL_FIXED_FEE_RATE_CARDS", "um.api"], True, True),
    ],
)
def test_scopes(scope: list[str] | None, usage: bool, fixed: bool) -> None:
    assert applies_to(candidate("c", scope=scope), USAGE) is usage
    assert applies_to(candidate("c", scope=scope), FIXED) is fixed


def test_in_effect_includes_both_ends() -> None:
    assert in_effect(candidate("c", effective_from=TODAY, effective_until=TODAY), TODAY)
    assert not in_effect(candidate("c", effective_from=TOMORROW), TODAY)
    assert not in_effect(candidate("c", effective_until=YESTERDAY), TODAY)
    assert in_effect(candidate("c", effective_until=None), TODAY)


def test_the_drawdown_order() -> None:
    later = CREATED + timedelta(seconds=1)
    ordered = [
        candidate("a", priority=0, effective_until=date(2027, 1, 1)),
        candidate("b", priority=1, effective_until=TOMORROW),
        candidate("c", priority=1, effective_until=date(2027, 1, 1)),
        candidate("d", priority=1, effective_from=date(2026, 1, 1)),
        candidate("e", priority=1, effective_from=YESTERDAY),
        candidate("f", priority=1, effective_from=YESTERDAY, created_at=later),
        candidate("g", priority=1, effective_from=YESTERDAY, created_at=later),
    ]
    shuffled = [ordered[i] for i in (6, 3, 0, 5, 2, 4, 1)]
    assert [c.credit_id for c in sorted(shuffled, key=drawdown_key)] == list("abcdefg")


def test_allocation_pays_in_order_and_never_spends_a_credit_twice() -> None:
    credits = [candidate("b", "7", priority=2), candidate("a", "5", priority=1)]
    items = [
        LineItem("um.api", EntityType.USAGE_METER_RATE_CARD, D(4)),
        LineItem("um.api", EntityType.USAGE_METER_RATE_CARD, D(6)),
        LineItem("um.api", EntityType.USAGE_METER_RATE_CARD, D(5)),
    ]
    paid = allocate(items, credits, TODAY)
    assert [line.allocations for line in paid] == [
        [("a", D(4))],
        [("a", D(1)), ("b", D(5))],
        [("b", D(2))],
    ]
    assert [line.applied for line in paid] == [D(4), D(6), D(2)]
    assert [line.remaining for line in paid] == [ZERO, ZERO, D(3)]
    assert [c.available for c in credits] == [ZERO, ZERO]


def test_allocation_skips_empty_out_of_scope_and_out_of_effect_credits() -> None:
    credits = [
        candidate("empty", "0", priority=0),
        candidate("fixed-only", "50", priority=0, scope=["ALL_FIXED_FEE_RATE_CARDS"]),
        candidate("future", "50", priority=0, effective_from=TOMORROW),
        candidate("ended", "50", priority=0, effective_until=YESTERDAY),
        candidate("pays", "3", priority=9),
    ]
    paid = allocate([USAGE], credits, TODAY)
    assert paid[0].allocations == [("pays", D(3))]
    assert paid[0].remaining == D(7)


def test_a_zero_line_item_takes_nothing() -> None:
    item = LineItem("um.api", EntityType.USAGE_METER_RATE_CARD, ZERO)
    paid = allocate([item], [candidate("a", "5")], TODAY)
    assert paid[0].allocations == []
    assert (paid[0].applied, paid[0].remaining) == (ZERO, ZERO)


def test_allocation_is_exact_at_the_smallest_and_largest_amounts() -> None:
    largest = D("999999999999999999.9999999999")
    smallest = D("0.0000000001")
    credits = [candidate("a", str(smallest)), candidate("b", str(largest), priority=2)]
    item = LineItem("um.api", EntityType.USAGE_METER_RATE_CARD, largest)
    paid = allocate([item], credits, TODAY)
    assert paid[0].allocations == [("a", smallest), ("b", largest - smallest)]
    assert paid[0].remaining == ZERO
    assert credits[1].available == smallest


def test_an_empty_line_allocation_applies_nothing() -> None:
    line = LineAllocation(USAGE)
    assert (line.applied, line.remaining) == (ZERO, D(10))


# -- formatting and ids ---------------------------------------------------------------------------


def test_ids_carry_their_creation_time_in_microseconds() -> None:
    digits = string.digits + string.ascii_uppercase + string.ascii_lowercase
    before = time.time_ns() // 1000
    stamp = new_id("cred").split(".")[1]
    after = time.time_ns() // 1000
    value = 0
    for char in stamp:
        value = value * len(digits) + digits.index(char)
    assert before <= value <= after


@pytest.mark.parametrize(
    ("value", "words"),
    [
        ("NaN", "finite"),
        ("Infinity", "finite"),
        ("0.12345678901", "10 digits after the decimal point"),
        ("1234567890123456789", "18 digits before the decimal point"),
    ],
)
def test_refused_amounts_say_what_is_allowed(value: str, words: str) -> None:
    with pytest.raises(AmountError, match=words):
        check_amount(D(value))
