"""Field types shared by the request schemas: exact amounts, calendar dates, ids."""

from datetime import date
from decimal import Decimal
from typing import Annotated, Any

from pydantic import AfterValidator, BeforeValidator, Field, StrictStr, WithJsonSchema

from drawdown.ledger.money import check_amount


def _json_number(value: Any) -> Any:
    if isinstance(value, bool) or not isinstance(value, int | Decimal):
        raise ValueError("must be a JSON number")
    return Decimal(value)


def _positive(value: Decimal) -> Decimal:
    if value <= 0:
        raise ValueError("must be greater than 0")
    return value


def _not_negative(value: Decimal) -> Decimal:
    if value < 0:
        raise ValueError("must be 0 or more")
    return value


def _iso_date(value: Any) -> Any:
    if not isinstance(value, str):
        raise ValueError("must be a date written as YYYY-MM-DD")
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise ValueError("must be a date written as YYYY-MM-DD") from None


_NUMBER_SCHEMA = WithJsonSchema({"type": "number"})

Amount = Annotated[
    Decimal, BeforeValidator(_json_number), AfterValidator(check_amount), _NUMBER_SCHEMA
]
PositiveAmount = Annotated[Amount, AfterValidator(_positive), _NUMBER_SCHEMA]
NonNegativeAmount = Annotated[Amount, AfterValidator(_not_negative), _NUMBER_SCHEMA]
CalendarDate = Annotated[
    date, BeforeValidator(_iso_date), WithJsonSchema({"type": "string", "format": "date"})
]
# Every id a caller chooses (customer, account, invoice, idempotency key): 1 to 50 visible
# characters without "/", whitespace, control characters or NUL, so that it can always be
# addressed again in a path (credits.md, "Errors").
IDENTIFIER_PATTERN = r"^[^\s/\x00-\x1f\x7f-\x9f]+$"
IDENTIFIER_MAX_LENGTH = 50
Identifier = Annotated[
    StrictStr,
    Field(min_length=1, max_length=IDENTIFIER_MAX_LENGTH, pattern=IDENTIFIER_PATTERN),
]
# Free text: anything but NUL, which PostgreSQL cannot store in text.
Text = Annotated[StrictStr, Field(min_length=1, max_length=255, pattern=r"^[^\x00]+$")]

IDENTIFIER_RULE = (
    f"must be 1 to {IDENTIFIER_MAX_LENGTH} visible characters without '/', "
    "whitespace or control characters"
)
