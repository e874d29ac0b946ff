"""The one error handler: every failure leaves as `{"message": "..."}` with its status."""

import logging
from typing import Any

from fastapi import FastAPI, Request, Response
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException

from drawdown.api.fields import IDENTIFIER_PATTERN, IDENTIFIER_RULE
from drawdown.api.jsonio import JSONResponse
from drawdown.errors import MAX_MESSAGE_LENGTH, DrawdownError, Throttled, Unavailable
from drawdown.ledger.money import TotalOverflow

log = logging.getLogger("drawdown")

_TAGS = {"body", "query", "path", "header", "batch", "single"}


def error_response(status: int, message: str, headers: dict[str, str] | None = None) -> Response:
    if len(message) > MAX_MESSAGE_LENGTH:
        message = message[: MAX_MESSAGE_LENGTH - 3] + "..."
    return JSONResponse({"message": message}, status_code=status, headers=headers)


def error_headers(error: DrawdownError) -> dict[str, str] | None:
    if isinstance(error, Throttled | Unavailable):
        return {"Retry-After": str(error.retry_after)}
    return None


def domain_error_response(error: DrawdownError) -> Response:
    return error_response(error.status_code, error.message, error_headers(error))


def _field_path(loc: tuple[Any, ...]) -> str:
    path = ""
    for part in loc:
        if isinstance(part, int):
            path += f"[{part}]"
        elif part not in _TAGS and not str(part).startswith("function-"):
            path += f".{part}" if path else str(part)
    return path


def _describe(error: dict[str, Any]) -> str:
    kind = error.get("type", "")
    if kind == "missing":
        return "is required"
    if kind == "extra_forbidden":
        return "is not a field of this request"
    if kind == "json_invalid":
        return "the request body is not valid JSON"
    if kind in ("model_attributes_type", "dict_type") and isinstance(error.get("input"), bytes):
        return "the request body must be a JSON object sent with Content-Type: application/json"
    if kind in ("model_attributes_type", "dict_type", "model_type"):
        return "must be a JSON object"
    if kind == "string_pattern_mismatch" and error.get("ctx", {}).get("pattern") == (
        IDENTIFIER_PATTERN
    ):
        return IDENTIFIER_RULE
    message = str(error.get("msg", "is invalid"))
    for prefix in ("Value error, ", "Assertion failed, "):
        message = message.removeprefix(prefix)
    return message[:1].lower() + message[1:]


def validation_message(errors: list[dict[str, Any]]) -> str:
    if not errors:
        return "the request is invalid"
    first = errors[0]
    path = _field_path(tuple(first.get("loc", ())))
    text = _describe(first)
    if not path:
        return (
            text[:1].upper() + text[1:]
            if first.get("type") == "json_invalid"
            else (f"the request body {text}" if not text.startswith("the request") else text)
        )
    message = f"{path}: {text}"
    if len(errors) > 1:
        message += f" (and {len(errors) - 1} more problem{'s' if len(errors) > 2 else ''})"
    return message


def install(app: FastAPI) -> None:
    @app.exception_handler(DrawdownError)
    async def drawdown_error(_request: Request, error: DrawdownError) -> Response:
        return domain_error_response(error)

    @app.exception_handler(TotalOverflow)
    async def total_overflow(_request: Request, error: TotalOverflow) -> Response:
        # The book names the account; elsewhere (an application's own totals) this says enough.
        return error_response(409, f"{error}; nothing was changed")

    @app.exception_handler(RequestValidationError)
    async def invalid_request(_request: Request, error: RequestValidationError) -> Response:
        return error_response(400, validation_message(list(error.errors())))

    @app.exception_handler(HTTPException)
    async def http_error(request: Request, error: HTTPException) -> Response:
        cause = error.__cause__
        if isinstance(cause, DrawdownError):
            return domain_error_response(cause)
        if error.status_code == 404:
            message = f"no such endpoint: {request.method} {request.url.path}"
        elif error.status_code == 405:
            message = f"{request.method} is not allowed on {request.url.path}"
        else:
            message = str(error.detail)
        return error_response(error.status_code, message, dict(error.headers or {}) or None)
