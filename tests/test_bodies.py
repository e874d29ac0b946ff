"""The fast body decoders (api/bodies.py) against the documented models (api/schemas.py with
jsonio's checks): whatever the fast path accepts, the documented models accept with the same
request, to the last digit; and the plain bodies clients send do take the fast path."""

import json
from decimal import Decimal
from typing import Any

from hypothesis import example, given
from hypothesis import strategies as st
from pydantic import TypeAdapter, ValidationError

from drawdown.api import bodies, jsonio
from drawdown.api.applications import _application_request
from drawdown.api.credits import _grants
from drawdown.api.schemas import CreditApplicationRequest, CreditGrantBody
from drawdown.errors import BadRequest
from drawdown.ledger.requests import ApplicationRequest

_GRANT_BODY: TypeAdapter[Any] = TypeAdapter(CreditGrantBody)
_APPLICATION_BODY: TypeAdapter[Any] = TypeAdapter(CreditApplicationRequest)


def documented_grants(raw: bytes) -> bodies.Grants | None:
    try:
        value = jsonio.decode(raw)
        return _grants(_GRANT_BODY.validate_python(value, from_attributes=True))
    except (BadRequest, ValidationError):
        return None


def documented_application(raw: bytes) -> ApplicationRequest | None:
    try:
        value = jsonio.decode(raw)
        return _application_request(_APPLICATION_BODY.validate_python(value, from_attributes=True))
    except (BadRequest, ValidationError):
        return None


def exact(value: Any) -> str:
    """repr shows a Decimal's digits and exponent, so 1.0 and 1 differ."""
    return repr(value)


# Values a field might be given: the edges of every rule in schemas.py and fields.py, written
# as raw JSON text so that numbers keep the form they are sent in.
EDGE_VALUES = [
    "null", '""', '"x"', '"acc-1"', '"a b"', '"a/b"', '"a\\n"', '"\\n"', '"a\\u0085"',
    '"a\\u00a0b"', '"\\u00e9"', '"\\u0000"', '"a\\u0000"', '"a\\"b"', '"a\\\\"', '"a:b"',
    '"' + "a" * 50 + '"', '"' + "a" * 51 + '"', '"' + "x" * 255 + '"', '"' + "x" * 256 + '"',
    "0", "-0", "-0.0", "0.0", "-1", "1", "3", "1.5", "3.0", "3.00", "1E+2", "1e2", "1E-11",
    "0E+1000000", "0E-1000000", "1E+1000000", "0.0000000001", "0.00000000010", "0.12345678901",
    "999999999999999999", "999999999999999999.9999999999", "1000000000000000000",
    "100.000000000000000000000000000000", "1000000", "1000001", "1E+6", "1E+18", "9" * 40,
    "true", "false", "[]", "{}", '["a"]', '[""]', '["a", "a"]', '["' + "x" * 256 + '"]',
    "[" + ", ".join(['"a"'] * 101) + "]", "[1]", '"2026-01-01"', '"20260101"', '"2026-W01-1"',
    '"2026-02-30"', '"0000-01-01"', '"9999-12-31"', '"2026-1-1"', '"2026-01-01T00:00:00"',
    '"HOLD"', '"DEBIT"', '"hold"', '"USAGE_METER_RATE_CARD"', '"FIXED_FEE_RATE_CARD"', '"100"',
]  # fmt: skip

GRANT_FIELDS = {
    "accountId": '"acc-1"',
    "purpose": '"PREPAID_CREDIT"',
    "effectiveFrom": '"2026-01-01"',
    "creditAmount": "100.1",
    "priority": "1",
}
GRANT_OPTIONAL = ("applicableEntityIds", "effectiveUntil", "grantorId", "idempotencyKey")
LINE_FIELDS = {"entityId": '"um.x"', "entityType": '"USAGE_METER_RATE_CARD"', "amount": "2.5"}
APPLICATION_FIELDS = {"invoiceId": '"inv-1"', "mode": '"HOLD"'}


def obj(pairs: list[tuple[str, str]]) -> str:
    return "{" + ", ".join(f"{json.dumps(k)}: {v}" for k, v in pairs) + "}"


@st.composite
def objects(draw: st.DrawFn, fields: dict[str, str], optional: tuple[str, ...]) -> str:
    """A JSON object of these fields, some changed, dropped, added, repeated or unknown."""
    pairs = list(fields.items())
    for name in optional:
        if draw(st.booleans()):
            pairs.append((name, draw(st.sampled_from(EDGE_VALUES))))
    for _ in range(draw(st.integers(0, 2))):
        index = draw(st.integers(0, len(pairs) - 1))
        action = draw(st.sampled_from(["change", "drop", "repeat", "unknown"]))
        name = pairs[index][0]
        value = draw(st.sampled_from(EDGE_VALUES))
        if action == "change":
            pairs[index] = (name, value)
        elif action == "drop":
            del pairs[index]
            if not pairs:
                pairs.append((name, value))
        elif action == "repeat":
            pairs.insert(draw(st.integers(0, len(pairs))), (name, value))
        else:
            pairs.append((draw(st.sampled_from(["surprise", "creditRequests", "a:b"])), value))
    return obj(pairs)


@st.composite
def grant_bodies(draw: st.DrawFn) -> str:
    single = objects(GRANT_FIELDS, GRANT_OPTIONAL)
    if draw(st.booleans()):
        return draw(single)
    items = draw(st.lists(single, min_size=0, max_size=3))
    return obj([("creditRequests", "[" + ", ".join(items) + "]")])


@st.composite
def application_bodies(draw: st.DrawFn) -> str:
    items = draw(st.lists(objects(LINE_FIELDS, ()), min_size=0, max_size=3))
    fields = {**APPLICATION_FIELDS, "lineItems": "[" + ", ".join(items) + "]"}
    return draw(objects(fields, ("asOf", "useWallet")))


@given(grant_bodies())
@example(obj([*GRANT_FIELDS.items(), ("priority", "2")]))
@example(obj([*GRANT_FIELDS.items(), ("effectiveUntil", "null"), ("effectiveUntil", "null")]))
@example(obj([*GRANT_FIELDS.items(), ("grantorId", '"a\\":"'), ("grantorId", '"b"')]))
@example(obj([*GRANT_FIELDS.items(), ("purpose", '"a\\\\"'), ("priority", "2")]))
def test_a_grant_the_fast_path_takes_is_the_documented_grant(text: str) -> None:
    raw = text.encode()
    fast = bodies.grants(raw)
    if fast is not None:
        assert exact(fast) == exact(documented_grants(raw)), text


@given(application_bodies())
@example(obj([*APPLICATION_FIELDS.items(), ("lineItems", "[" + obj([*LINE_FIELDS.items()]) + "]")]))
@example(
    obj(
        [
            *APPLICATION_FIELDS.items(),
            ("lineItems", "[" + obj([*LINE_FIELDS.items(), ("amount", "0E+1000000")]) + "]"),
        ]
    )
)
def test_an_application_the_fast_path_takes_is_the_documented_one(text: str) -> None:
    raw = text.encode()
    fast = bodies.application(raw)
    if fast is not None:
        assert exact(fast) == exact(documented_application(raw)), text


def grant(**fields: Any) -> dict[str, Any]:
    body = {
        "accountId": "acc-1",
        "purpose": "PREPAID_CREDIT",
        "effectiveFrom": "2026-01-01",
        "creditAmount": Decimal("100.1"),
        "priority": 1,
    }
    return {**body, **fields}


def dumps(body: Any, **options: Any) -> bytes:
    # Decimal as its own digits, the way a client writes an exact amount
    text = json.dumps(body, default=lambda d: f"@{d}@", **options)
    return text.replace('"@', "").replace('@"', "").encode()


PLAIN_GRANTS = [
    grant(),
    grant(creditAmount=Decimal("0.0000000001"), priority=0),
    grant(creditAmount=Decimal("999999999999999999.9999999999"), priority=1_000_000),
    grant(creditAmount=7, effectiveUntil="2026-12-31", idempotencyKey="k-1", grantorId="g"),
    grant(applicableEntityIds=["um.x", "ff.y"], effectiveUntil=None, grantorId=None),
    grant(purpose='a "quoted": \\ purpose', accountId="é-ü-∑"),
    {"creditRequests": [grant(), grant(accountId="acc-2", creditAmount=Decimal("1E+2"))]},
]


def test_plain_grants_take_the_fast_path_with_the_documented_values() -> None:
    for body in PLAIN_GRANTS:
        for options in ({}, {"ensure_ascii": False}, {"indent": 2}, {"separators": (",", ":")}):
            raw = dumps(body, **options)
            fast = bodies.grants(raw)
            assert fast is not None, raw
            assert exact(fast) == exact(documented_grants(raw))
    single = bodies.grants(dumps(grant(creditAmount=Decimal("100.10"))))
    assert single is not None and not single.batch
    assert exact(single.requests[0].credit_amount) == "Decimal('100.1')"


def test_plain_applications_take_the_fast_path_with_the_documented_values() -> None:
    items = [
        {"entityId": "um.x", "entityType": "USAGE_METER_RATE_CARD", "amount": Decimal("30.05")},
        {"entityId": "ff.y", "entityType": "FIXED_FEE_RATE_CARD", "amount": 0},
    ]
    for extra in ({}, {"asOf": "2026-11-01"}, {"asOf": None}, {"useWallet": False}):
        for mode in ("HOLD", "DEBIT"):
            raw = dumps({"invoiceId": "inv-1", "mode": mode, "lineItems": items, **extra})
            fast = bodies.application(raw)
            assert fast is not None, raw
            assert exact(fast) == exact(documented_application(raw))


def test_bytes_that_are_not_json_are_never_fast() -> None:
    valid = dumps(grant(purpose="PLACEHOLDER"))
    for raw in (
        valid.replace(b"PLACEHOLDER", b"\xff"),
        valid.replace(b"PLACEHOLDER", b"\\ud800"),
        b"\xef\xbb\xbf" + valid,
        b"[" * 100_000 + b"]" * 100_000,
        valid + b" x",
        b"",
    ):
        assert bodies.grants(raw) is None, raw
        assert bodies.application(raw) is None, raw


def test_a_key_given_twice_is_never_fast() -> None:
    once = dumps(grant(effectiveUntil=None))
    assert bodies.grants(once) is not None
    for repeated in (
        once.replace(b"{", b'{"priority": 1, ', 1),
        once.replace(b"{", b'{"effectiveUntil": null, ', 1),
        once.replace(b"{", b'{"purpose": "a\\":\\\\", ', 1),
        dumps({"creditRequests": [grant()]}).replace(b"[{", b'[{"accountId": "x", ', 1),
        dumps({"creditRequests": [grant()]}).replace(b"{", b'{"creditRequests": [], ', 1),
    ):
        assert bodies.grants(repeated) is None, repeated
        assert documented_grants(repeated) is None, repeated


def test_what_the_documented_models_alone_accept() -> None:
    """Bodies today's rules accept in forms the fast path leaves to them: the endpoint still
    takes them (tests/test_openapi.py sends priority 3.0), the same way."""
    for raw in (
        dumps(grant()).replace(b'"priority": 1', b'"priority": 3.0'),
        dumps(grant(effectiveFrom="20260101")),
        dumps(grant(creditAmount=Decimal("100.000000000000000000000000000000000"))),
    ):
        assert bodies.grants(raw) is None
        assert documented_grants(raw) is not None
