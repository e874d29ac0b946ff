"""Exact money: parsing limits, arithmetic that never rounds, and the one place amounts are
formatted for output.

An amount has at most 18 digits before the point and 10 after; a total (a sum of many
amounts, such as an account's balance) at most 28 before and 10 after. All money arithmetic
runs in `MONEY`, a decimal context wide enough for the widest total that traps every kind
of rounding, so a result is either exact or an exception, never a silently rounded value.
The context is passed explicitly (`add`, `sub`, `total` call its methods) rather than set as
the thread's context, because asyncio tasks each copy the context they start with.
"""

from collections.abc import Iterable
from decimal import (
    ROUND_HALF_EVEN,
    Clamped,
    Context,
    Decimal,
    DecimalException,
    DivisionByZero,
    FloatOperation,
    Inexact,
    InvalidOperation,
    Overflow,
    Rounded,
    Subnormal,
    Underflow,
)

MAX_INTEGER_DIGITS = 18
MAX_FRACTION_DIGITS = 10
MAX_TOTAL_INTEGER_DIGITS = 28
# Every total is a multiple of 10^-10 below 10^28: 38 significant digits at most.
PRECISION = MAX_TOTAL_INTEGER_DIGITS + MAX_FRACTION_DIGITS
ZERO = Decimal(0)
_TOTAL_LIMIT = Decimal(10) ** MAX_TOTAL_INTEGER_DIGITS

MONEY = Context(
    prec=PRECISION,
    rounding=ROUND_HALF_EVEN,
    Emin=-99,
    Emax=99,
    traps=[
        Clamped,
        DivisionByZero,
        FloatOperation,
        Inexact,
        InvalidOperation,
        Overflow,
        Rounded,
        Subnormal,
        Underflow,
    ],
)


class AmountError(ValueError):
    """An amount that is not a finite decimal within the allowed digits."""


class TotalOverflow(ArithmeticError):
    """A sum of money that cannot be represented exactly within a total's 28+10 digits."""


def _without_trailing_zeros(value: Decimal) -> Decimal:
    """The same finite, non-zero value without trailing zeros (`1.500` -> `1.5`, `100` ->
    `1E+2`), built from its digits: no context can round it and a huge exponent costs
    nothing. Sums of such values never carry more digits than the amounts need."""
    sign, digits, exponent = value.as_tuple()
    assert isinstance(exponent, int)
    end = len(digits)  # a Decimal's digits never start with 0, so only the end needs trimming
    while digits[end - 1] == 0:
        end -= 1
    return Decimal((sign, digits[:end], exponent + len(digits) - end))


def check_amount(value: Decimal) -> Decimal:
    """The amount if, exactly as given, it fits 18 digits before the point and 10 after;
    returned without trailing zeros, and zero (however written: `0E+1000000`, `-0`) as 0."""
    if not value.is_finite():
        raise AmountError("must be a finite number")
    if value.is_zero():
        return ZERO
    exact = _without_trailing_zeros(value)
    _sign, digits, exponent = exact.as_tuple()
    assert isinstance(exponent, int)
    if -exponent > MAX_FRACTION_DIGITS:
        raise AmountError(f"must have at most {MAX_FRACTION_DIGITS} digits after the decimal point")
    if len(digits) + exponent > MAX_INTEGER_DIGITS:
        raise AmountError(f"must have at most {MAX_INTEGER_DIGITS} digits before the decimal point")
    return exact


_TOO_LARGE = f"a total would exceed {MAX_TOTAL_INTEGER_DIGITS} digits before the decimal point"


def _not_exact(error: DecimalException) -> TotalOverflow:
    if isinstance(error, (Inexact, Rounded, Overflow)):
        # Amounts carry at most 10 decimals, so only a result too large can need rounding.
        return TotalOverflow(_TOO_LARGE)
    return TotalOverflow(f"money arithmetic could not be exact ({type(error).__name__})")


def _within_total(result: Decimal) -> Decimal:
    if result.copy_abs() >= _TOTAL_LIMIT:  # copy_abs, unlike abs(), consults no context
        raise TotalOverflow(_TOO_LARGE)
    return result


# add, sub and total repeat their try rather than share a helper taking a callable: they run
# a few dozen times per account burned, and the closure cost more than the sum.
def add(first: Decimal, second: Decimal) -> Decimal:
    """The exact sum, within a total's digits, or `TotalOverflow`."""
    try:
        result = MONEY.add(first, second)
    except DecimalException as error:
        raise _not_exact(error) from None
    return _within_total(result)


def sub(minuend: Decimal, subtrahend: Decimal) -> Decimal:
    """The exact difference, within a total's digits, or `TotalOverflow`."""
    try:
        result = MONEY.subtract(minuend, subtrahend)
    except DecimalException as error:
        raise _not_exact(error) from None
    return _within_total(result)


def total(values: Iterable[Decimal]) -> Decimal:
    """The exact sum of many amounts, within a total's digits, or `TotalOverflow`."""
    result = ZERO
    try:
        for value in values:
            result = MONEY.add(result, value)
    except DecimalException as error:
        raise _not_exact(error) from None
    return _within_total(result)


def format_amount(value: Decimal) -> str:
    """Plain notation without trailing zeros: 100, 0, 0.3 (never 1E+2, 0E-10 or -0).

    Exact for any finite decimal: format "f" without a precision consults no context.
    """
    if not value.is_finite():
        raise AmountError("must be a finite number")
    if value.is_zero():
        return "0"
    return format(_without_trailing_zeros(value), "f")
