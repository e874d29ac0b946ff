"""Exact money: parsing limits and the one place amounts are formatted for output."""

from decimal import Decimal

MAX_INTEGER_DIGITS = 18
MAX_FRACTION_DIGITS = 10
ZERO = Decimal(0)


class AmountError(ValueError):
    """An amount that is not a finite decimal within the allowed digits."""


def check_amount(value: Decimal) -> Decimal:
    """Return `value` unchanged if it fits 18 digits before the point and 10 after."""
    if not value.is_finite():
        raise AmountError("must be a finite number")
    _sign, digits, exponent = value.normalize().as_tuple()
    assert isinstance(exponent, int)
    fraction_digits = max(0, -exponent)
    integer_digits = max(0, len(digits) + exponent)
    if digits == (0,):
        return value
    if fraction_digits > MAX_FRACTION_DIGITS:
        raise AmountError(f"must have at most {MAX_FRACTION_DIGITS} digits after the decimal point")
    if integer_digits > MAX_INTEGER_DIGITS:
        raise AmountError(f"must have at most {MAX_INTEGER_DIGITS} digits before the decimal point")
    return value


def format_amount(value: Decimal) -> str:
    """Plain notation without trailing zeros: 100, 0, 0.3 (never 1E+2, 0E-10 or -0)."""
    if value == 0:
        return "0"
    text = format(value.normalize(), "f")
    return text


def canonical(value: Decimal) -> Decimal:
    """The same amount in a form whose str() is its plain notation."""
    return Decimal(format_amount(value))
