from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal

import pytest

from drawdown.ledger.ids import new_id
from drawdown.ledger.money import (
    AmountError,
    TotalOverflow,
    add,
    check_amount,
    format_amount,
    sub,
    total,
)
from drawdown.ledger.shapes import timestamp


@pytest.mark.parametrize(
    ("value", "text"),
    [
        (Decimal("100.0000000000"), "100"),
        (Decimal("0E-10"), "0"),
        (Decimal("1E+2"), "100"),
        (Decimal("0.30"), "0.3"),
        (Decimal("0.0000001"), "0.0000001"),
        (Decimal("-0"), "0"),
        (Decimal("123456789012345678.0123456789"), "123456789012345678.0123456789"),
    ],
)
def test_amounts_are_written_in_plain_notation(value: Decimal, text: str) -> None:
    assert format_amount(value) == text


@pytest.mark.parametrize(
    "value",
    [
        Decimal("1234567890123456789"),
        Decimal("0.12345678901"),
        Decimal("NaN"),
        Decimal("Infinity"),
        Decimal("1E+400"),
    ],
)
def test_amounts_beyond_18_and_10_digits_are_refused(value: Decimal) -> None:
    with pytest.raises(AmountError):
        check_amount(value)


@pytest.mark.parametrize(
    "value", [Decimal("123456789012345678.0123456789"), Decimal("1.5000000000000")]
)
def test_amounts_within_limits_pass_with_their_value(value: Decimal) -> None:
    checked = check_amount(value)
    assert checked == value
    assert str(checked) == str(value).rstrip("0")  # trailing zeros are dropped


@pytest.mark.parametrize(
    "value", [Decimal(0), Decimal("-0"), Decimal("0E+1000000"), Decimal("0E-99")]
)
def test_zero_in_any_notation_comes_back_as_plain_zero(value: Decimal) -> None:
    zero = check_amount(value)
    assert zero == 0 and zero.as_tuple() == Decimal(0).as_tuple()


def test_ids_have_togais_shape_and_are_unique() -> None:
    ids = {new_id("cred") for _ in range(1000)}
    assert len(ids) == 1000
    for credit_id in ids:
        prefix, middle, tail = credit_id.split(".")
        assert prefix == "cred" and len(middle) == 11 and len(tail) == 5
        assert len(credit_id) <= 50
        assert all(c.isalnum() for c in middle + tail)


@pytest.mark.parametrize(
    ("moment", "text"),
    [
        (datetime(2026, 11, 24, 12, 0, tzinfo=UTC), "2026-11-24T12:00:00Z"),
        (datetime(2026, 11, 24, 12, 0, 0, 150000, tzinfo=UTC), "2026-11-24T12:00:00.15Z"),
        (datetime(2026, 11, 24, 12, 0, 0, 1, tzinfo=UTC), "2026-11-24T12:00:00.000001Z"),
        (
            datetime(2026, 11, 24, 13, 0, tzinfo=timezone(timedelta(hours=1))),
            "2026-11-24T12:00:00Z",
        ),
    ],
)
def test_timestamps_are_utc_with_a_trimmed_fraction(moment: datetime, text: str) -> None:
    assert timestamp(moment) == text


@pytest.mark.parametrize("value", [Decimal("NaN"), Decimal("sNaN"), Decimal("Infinity")])
def test_non_finite_values_are_refused_in_words(value: Decimal) -> None:
    with pytest.raises(AmountError) as refused:
        check_amount(value)
    assert str(refused.value) == "must be a finite number"
    with pytest.raises(AmountError) as unwritable:
        format_amount(value)
    assert str(unwritable.value) == "must be a finite number"


def test_trailing_zeros_of_any_amount_are_dropped_exactly() -> None:
    assert check_amount(Decimal("100.0000000000")).as_tuple() == Decimal("1E+2").as_tuple()
    assert check_amount(Decimal("0.5000")).as_tuple() == Decimal("0.5").as_tuple()
    assert check_amount(Decimal("-20.10")).as_tuple() == Decimal("-20.1").as_tuple()


def test_arithmetic_that_cannot_be_exact_says_why() -> None:
    signalling = Decimal("sNaN")
    for invalid_arithmetic in (
        lambda: add(signalling, Decimal(1)),
        lambda: sub(Decimal(1), signalling),
        lambda: total([Decimal(1), signalling]),
    ):
        with pytest.raises(TotalOverflow) as invalid:
            invalid_arithmetic()
        assert str(invalid.value) == "money arithmetic could not be exact (InvalidOperation)"
    widest = Decimal("9999999999999999999999999999.9999999999")
    just_past = (
        lambda: add(widest, Decimal("0.0000000001")),
        lambda: sub(-widest, widest),
        lambda: add(Decimal(10**28 - 1), Decimal(1)),  # exactly 10^28: representable, too large
        lambda: total([widest, Decimal("0.0000000001")]),
        lambda: total([-widest, -widest]),
    )
    for overflowing in just_past:
        with pytest.raises(TotalOverflow) as too_large:
            overflowing()
        assert str(too_large.value) == "a total would exceed 28 digits before the decimal point"
