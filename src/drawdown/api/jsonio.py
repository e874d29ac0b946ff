"""JSON in and out with exact decimals: numbers are read as Decimal, never through a float,
and amounts are written as plain JSON number literals (100, 0, 0.3).

A body is refused with a 400 naming the place when it is not JSON, empty, nested deeper than
`MAX_DEPTH`, repeats a key in one object, holds NUL in a string (PostgreSQL cannot store it),
or holds a number beyond `MAX_EXPONENT` (no field takes one, and the stores cannot keep it).
"""

import json
from decimal import Decimal
from typing import Any

import msgspec
from fastapi import Request, Response
from fastapi.dependencies.models import Dependant
from fastapi.routing import APIRoute
from starlette.responses import JSONResponse as StarletteJSONResponse

from drawdown.api.read_deadline import within
from drawdown.errors import BadRequest
from drawdown.ledger.money import format_amount

MAX_DEPTH = 32
MAX_EXPONENT = 1000

_decoder = msgspec.json.Decoder(float_hook=Decimal)
# decimals kept in free-form fields (a customer's settings) leave as the numbers they came as
_encoder = msgspec.json.Encoder(decimal_format="number")


def decode(body: bytes) -> Any:
    if not body.strip():
        raise BadRequest("the request body is empty; send a JSON object")
    try:
        value = _decoder.decode(body)
    except msgspec.DecodeError as error:
        raise BadRequest(f"the request body is not valid JSON: {error}") from None
    except UnicodeDecodeError:
        raise BadRequest("the request body is not valid JSON: it is not UTF-8") from None
    except RecursionError:
        raise BadRequest(f"the request body is nested more than {MAX_DEPTH} levels deep") from None
    _check(value, "", 0)
    json.loads(body, object_pairs_hook=_refuse_repeated_keys, parse_float=len, parse_int=len)
    return value


def _check(value: Any, path: str, depth: int) -> None:
    if depth > MAX_DEPTH:
        raise BadRequest(f"the request body is nested more than {MAX_DEPTH} levels deep")
    where = path or "the request body"
    if isinstance(value, str):
        if "\x00" in value:
            raise BadRequest(f"{where}: must not contain the NUL character")
    elif isinstance(value, bool):
        return
    elif isinstance(value, int):
        if value.bit_length() > 3 * MAX_EXPONENT:
            raise BadRequest(f"{where}: the number is out of range")
    elif isinstance(value, Decimal):
        if abs(value.adjusted()) > MAX_EXPONENT:
            raise BadRequest(f"{where}: the number is out of range")
    elif isinstance(value, dict):
        for key, item in value.items():
            if "\x00" in key:
                raise BadRequest(f"{where}: a key must not contain the NUL character")
            _check(item, f"{path}.{key}" if path else key, depth + 1)
    elif isinstance(value, list):
        for index, item in enumerate(value):
            _check(item, f"{path}[{index}]", depth + 1)


def _refuse_repeated_keys(pairs: list[tuple[str, Any]]) -> None:
    seen: set[str] = set()
    for key, _ in pairs:
        if key in seen:
            raise BadRequest(f"{key}: appears twice in one object of the request body")
        seen.add(key)


def money(value: Decimal) -> msgspec.Raw:
    return msgspec.Raw(format_amount(value).encode())


class JSONResponse(StarletteJSONResponse):
    # a JSONResponse for FastAPI too, so the document shows each route's response model
    media_type = "application/json"

    def render(self, content: Any) -> bytes:
        return _encoder.encode(content)


class DecimalRequest(Request):
    async def json(self) -> Any:
        if not hasattr(self, "_json"):
            self._json = decode(await self.body())
        return self._json


def _query_names(dependant: Dependant) -> set[str]:
    names = {param.alias for param in dependant.query_params}
    for dependency in dependant.dependencies:
        names |= _query_names(dependency)
    return names


class DecimalRoute(APIRoute):
    """A route whose JSON bodies are parsed with decimals for every non-integer number, and
    which refuses query parameters it does not take, or takes once, with a 400."""

    def get_route_handler(self):  # type: ignore[no-untyped-def]
        handler = super().get_route_handler()
        known = _query_names(self.dependant)
        reads = self.methods == {"GET"}

        async def decimal_handler(request: Request) -> Response:
            for name in request.query_params:
                if name not in known:
                    takes = ", ".join(sorted(known)) or "none"
                    raise BadRequest(
                        f"{name}: is not a query parameter of this endpoint (it takes: {takes})"
                    )
                if len(request.query_params.getlist(name)) > 1:
                    raise BadRequest(f"{name}: must be given at most once")
            decimal_request = DecimalRequest(request.scope, request.receive)
            if reads:
                return await within(request.app.state.db.silent_after, handler(decimal_request))
            return await handler(decimal_request)

        return decimal_handler
