"""The one error handler: every failure leaves as `{"message": "..."}` with its status."""

import logging
from typing import Any

import asyncpg
from fastapi import FastAPI, Request, Response
from fastapi.exceptions import RequestValidationError
from sqlalchemy.exc import IntegrityError
from sqlalchemy.exc import TimeoutError as PoolTimeout
from starlette.exceptions import HTTPException

from drawdown.api.jsonio import JSONResponse
from drawdown.errors import MAX_MESSAGE_LENGTH, DrawdownError

log = logging.getLogger("drawdown")

_TAGS = {"body", "query", "path", "header", "batch", "single"}


def error_response(status: int, message: str, headers: dict[str, str] | None = None) -> Response:
    if len(message) > MAX_MESSAGE_LENGTH:
        message = message[: MAX_MESSAGE_LENGTH - 3] + "..."
    return JSONResponse({"message": message}, status_code=status, headers=headers)


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


def _is_unique_violation(error: IntegrityError) -> bool:
    sqlstate = getattr(error.orig, "sqlstate", None) or getattr(error.orig, "pgcode", None)
    if sqlstate is not None:
        return bool(sqlstate == "23505")
    return "UNIQUE constraint failed" in str(error.orig)


_UNREACHABLE = (
    asyncpg.exceptions.TooManyConnectionsError,
    asyncpg.exceptions.CannotConnectNowError,
    ConnectionRefusedError,
)


def _database_unreachable(error: BaseException | None) -> bool:
    """Whether the failure, or anything it wraps, is the database refusing a connection."""
    seen = 0
    while error is not None and seen < 10:
        if isinstance(error, _UNREACHABLE):
            return True
        error = getattr(error, "orig", None) or error.__cause__ or error.__context__
        seen += 1
    return False


def install(app: FastAPI) -> None:
    @app.exception_handler(DrawdownError)
    async def drawdown_error(_request: Request, error: DrawdownError) -> Response:
        headers = {"Retry-After": "1"} if error.status_code == 429 else None
        return error_response(error.status_code, error.message, headers)

    @app.exception_handler(RequestValidationError)
    async def invalid_request(_request: Request, error: RequestValidationError) -> Response:
        return error_response(400, validation_message(list(error.errors())))

    @app.exception_handler(HTTPException)
    async def http_error(request: Request, error: HTTPException) -> Response:
        cause = error.__cause__
        if isinstance(cause, DrawdownError):
            return error_response(cause.status_code, cause.message)
        if error.status_code == 404:
            message = f"no such endpoint: {request.method} {request.url.path}"
        elif error.status_code == 405:
            message = f"{request.method} is not allowed on {request.url.path}"
        else:
            message = str(error.detail)
        return error_response(error.status_code, message, dict(error.headers or {}) or None)

    @app.exception_handler(IntegrityError)
    async def integrity_error(_request: Request, error: IntegrityError) -> Response:
        if not _is_unique_violation(error):
            # a CHECK or foreign key refused a write the rules should have refused first: a bug
            log.error("a database constraint refused a write: %s", error.orig)
            return error_response(500, "internal error; the request was not applied")
        log.info("unique constraint conflict: %s", error.orig)
        return error_response(
            409, "the request conflicts with a record written at the same time; retry it"
        )

    @app.exception_handler(PoolTimeout)
    async def overloaded(_request: Request, _error: PoolTimeout) -> Response:
        log.warning("no database connection became free in time")
        return error_response(
            503, "the service is overloaded; retry after a moment", {"Retry-After": "1"}
        )

    @app.exception_handler(Exception)
    async def unexpected(_request: Request, error: Exception) -> Response:
        if _database_unreachable(error):
            log.warning("the database refused a connection: %s", error)
            return error_response(
                503,
                "the database is not accepting connections; retry after a moment",
                {"Retry-After": "1"},
            )
        log.exception("unhandled error", exc_info=error)
        return error_response(500, "internal error; the request was not applied")
