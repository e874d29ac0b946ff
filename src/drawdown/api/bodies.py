"""The write bodies decoded straight into typed structs, and on to the ledger's requests.

This is the fast path: one msgspec decode into `msgspec.Struct`s whose field types and limits
are those of `api/schemas.py`, numbers read exactly from their JSON text, and a count of keys
that refuses a key given twice without parsing the body again. It only ever accepts a body that
the documented models (`api/schemas.py`, with the checks of `api/jsonio.py`) accept, with the
same values; whatever it does not accept at once (a refusal, `3.0` as an integer, `20260101` as
a date, ...) it leaves to them, so every answer and every refusal keeps today's words
(`api/endpoints.py` does the hand-over). tests/test_bodies.py holds the two to agreement.
"""

from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from typing import Annotated, Literal, TypeVar

import msgspec
from msgspec import UNSET, Meta, Raw, Struct, UnsetType

from drawdown.api.jsonio import MAX_EXPONENT
from drawdown.ledger.allocation import EntityType, LineItem
from drawdown.ledger.application import ApplicationMode
from drawdown.ledger.money import AmountError, check_amount
from drawdown.ledger.requests import ApplicationRequest, GrantRequest

# fields.Identifier and fields.Text; `\Z`, not `$`, which would let a final newline through.
# NUL needs no pattern: a body that writes one (`\u0000`) never takes the fast path.
Identifier = Annotated[
    str, Meta(min_length=1, max_length=50, pattern=r"^[^\s/\x00-\x1f\x7f-\x9f]+\Z")
]
Text = Annotated[str, Meta(min_length=1, max_length=255)]
EntityIds = Annotated[list[Text], Meta(max_length=100)]
Priority = Annotated[int, Meta(ge=0, le=1_000_000)]


class CreditRequestStruct(Struct, forbid_unknown_fields=True, kw_only=True):
    accountId: Identifier
    purpose: Text
    applicableEntityIds: EntityIds | UnsetType | None = UNSET
    effectiveFrom: date
    effectiveUntil: date | UnsetType | None = UNSET
    creditAmount: Raw
    priority: Priority
    grantorId: Text | UnsetType | None = UNSET
    idempotencyKey: Identifier | UnsetType | None = UNSET


class CreateCreditRequestStruct(Struct, forbid_unknown_fields=True):
    creditRequests: Annotated[list[CreditRequestStruct], Meta(min_length=1, max_length=50)]


class LineItemStruct(Struct, forbid_unknown_fields=True):
    entityId: Text
    entityType: Literal["USAGE_METER_RATE_CARD", "FIXED_FEE_RATE_CARD"]
    amount: Raw


class CreditApplicationStruct(Struct, forbid_unknown_fields=True, kw_only=True):
    invoiceId: Identifier
    mode: Literal["HOLD", "DEBIT"]
    asOf: date | UnsetType | None = UNSET
    lineItems: Annotated[list[LineItemStruct], Meta(min_length=1, max_length=500)]


_single = msgspec.json.Decoder(CreditRequestStruct)
_batch = msgspec.json.Decoder(CreateCreditRequestStruct)
_application = msgspec.json.Decoder(CreditApplicationStruct)


@dataclass(frozen=True)
class Grants:
    """A grant body: one request (answered as one credit) or a batch (answered as a list)."""

    batch: bool
    requests: list[GrantRequest]


class _NotFast(Exception):
    """The fast path does not accept the body; the documented models judge it."""


# msgspec's refusals (ValidationError is a DecodeError), and what it raises for bytes that are
# not UTF-8 or nesting too deep for it
_NOT_FAST = (msgspec.DecodeError, UnicodeDecodeError, RecursionError, _NotFast)


def grants(body: bytes) -> Grants | None:
    """The grants of a POST /credits body, or None when the documented models must judge it."""
    if b"\\u0000" in body:
        return None
    try:
        # the documented body is a batch exactly when it is an object with "creditRequests"
        if b'"creditRequests"' in body:
            items = _batch.decode(body).creditRequests
            given = 1 + sum(_grant_keys(item) for item in items)
            batch = True
        else:
            items = [_single.decode(body)]
            given = _grant_keys(items[0])
            batch = False
        if not no_key_repeated(body, given):
            return None
        return Grants(batch, [_grant(item) for item in items])
    except _NOT_FAST:
        return None


def application(body: bytes) -> ApplicationRequest | None:
    """The request of a credit application body, or None when the documented models must
    judge it."""
    if b"\\u0000" in body:
        return None
    try:
        decoded = _application.decode(body)
        given = 3 + (decoded.asOf is not UNSET) + 3 * len(decoded.lineItems)
        if not no_key_repeated(body, given):
            return None
        return ApplicationRequest(
            invoice_id=decoded.invoiceId,
            mode=ApplicationMode(decoded.mode),
            as_of=_given(decoded.asOf),
            line_items=tuple(
                LineItem(item.entityId, EntityType(item.entityType), _amount(item.amount))
                for item in decoded.lineItems
            ),
        )
    except _NOT_FAST:
        return None


def no_key_repeated(body: bytes, given: int) -> bool:
    """Whether the (valid) JSON text writes no key twice in one object, given that the structs
    received `given` fields: every key is a field (unknown ones are refused) and a field counts
    once, so the keys written equal `given` exactly when none repeats.

    Every key is followed by a colon, so the body's colons are at least the keys written, and
    at least `given`; when they are exactly `given`, so are the keys (the usual case, decided
    at the cost of one `bytes.count`). Only a string with a colon in it needs a closer look."""
    return body.count(b":") == given or _keys_written(body) == given


def _keys_written(body: bytes) -> int:
    """How many keys the (valid) JSON text writes, counting repeats: the colons outside
    strings. Equal to the fields the structs received exactly when no object repeats a key,
    since every key is a field (unknown ones are refused) and a field counts once."""
    if b"\\" in body:
        # Inside strings, `\\` and `\"` are the only escapes that could hide a quote; taken
        # out left to right they leave every string between two plain quotes.
        body = body.replace(b"\\\\", b"").replace(b'\\"', b"")
    return sum(outside.count(b":") for outside in body.split(b'"')[::2])


def _grant_keys(item: CreditRequestStruct) -> int:
    optional = (item.applicableEntityIds, item.effectiveUntil, item.grantorId, item.idempotencyKey)
    return 5 + sum(value is not UNSET for value in optional)


def _grant(item: CreditRequestStruct) -> GrantRequest:
    amount = _amount(item.creditAmount)
    if amount <= 0:
        raise _NotFast
    entity_ids = _given(item.applicableEntityIds)
    return GrantRequest(
        account_id=item.accountId,
        purpose=item.purpose,
        applicable_entity_ids=tuple(entity_ids) if entity_ids is not None else None,
        effective_from=item.effectiveFrom,
        effective_until=_given(item.effectiveUntil),
        credit_amount=amount,
        priority=item.priority,
        grantor_id=_given(item.grantorId),
        idempotency_key=_given(item.idempotencyKey),
    )


_T = TypeVar("_T")


def _given(value: _T | UnsetType | None) -> _T | None:
    return None if isinstance(value, UnsetType) else value


# the longest plain amount: 18 digits, a point, 10 decimals, a sign
_LONGEST_AMOUNT = 30
_NUMBER_START = frozenset(b"-0123456789")


def _amount(raw: Raw) -> Decimal:
    """The non-negative amount a JSON number writes, exactly (never through a float), as
    `fields.Amount` reads it; anything else (a string, a number out of range or too long to
    be an amount as written) is not fast."""
    text = bytes(raw)
    if not text or text[0] not in _NUMBER_START or len(text) > _LONGEST_AMOUNT:
        raise _NotFast
    if b"." in text or b"e" in text or b"E" in text:
        value = Decimal(text.decode())
        if abs(value.adjusted()) > MAX_EXPONENT:  # as jsonio refuses it
            raise _NotFast
    else:
        value = Decimal(int(text))  # as msgspec reads an integer: -0 is 0
    try:
        amount = check_amount(value)
    except AmountError:
        raise _NotFast from None
    if amount < 0:
        raise _NotFast
    return amount
