"""JSON in and out with exact decimals: numbers are read as Decimal, never through a float,
and amounts are written as plain JSON number literals (100, 0, 0.3)."""

from decimal import Decimal
from typing import Any

import msgspec
from fastapi import Request, Response
from fastapi.routing import APIRoute
from starlette.responses import JSONResponse as StarletteJSONResponse

from drawdown.errors import BadRequest
from drawdown.ledger.money import format_amount

_decoder = msgspec.json.Decoder(float_hook=Decimal)
_encoder = msgspec.json.Encoder()


def decode(body: bytes) -> Any:
    try:
        return _decoder.decode(body)
    except msgspec.DecodeError as error:
        raise BadRequest(f"the request body is not valid JSON: {error}") from None


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


class DecimalRoute(APIRoute):
    """A route whose JSON bodies are parsed with decimals for every non-integer number."""

    def get_route_handler(self):  # type: ignore[no-untyped-def]
        handler = super().get_route_handler()

        async def decimal_handler(request: Request) -> Response:
            return await handler(DecimalRequest(request.scope, request.receive))

        return decimal_handler
