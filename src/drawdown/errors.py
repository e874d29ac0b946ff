"""Errors a caller can act on. Each becomes `{"message": ...}` with its HTTP status.

DrawdownError
├── BadRequest      400  the input is wrong; nothing was changed
├── Unauthorized    401  no key, or an unknown one
├── Forbidden       403  the key may not do this
├── NotFound        404  no such thing in this organization
├── MethodNotAllowed 405
├── Conflict        409  it clashes with what exists
├── TooLarge        413  the request body is over the limit
├── Throttled       429  over the API key's rate limit (with Retry-After)
└── Unavailable     503  the database is unreachable, refusing connections, or busy past its
                         wait (with Retry-After); the request was not applied

The store turns driver failures (asyncpg, sqlite3, the pool) into these, so nothing above it
matches on a driver's class.
"""

from collections.abc import Hashable, Iterable
from typing import TypeVar

MAX_MESSAGE_LENGTH = 500
T = TypeVar("T", bound=Hashable)


def first_repeat(values: Iterable[T]) -> tuple[int, T] | None:
    """The first value that appeared before, with its index, for a message that names it."""
    seen: set[T] = set()
    for index, value in enumerate(values):
        if value in seen:
            return index, value
        seen.add(value)
    return None


def shown(text: str) -> str:
    """A value a caller sent, quoted for a message that names it, cut at 40 characters."""
    return repr(text) if len(text) <= 40 else repr(text[:37]) + "..."


class DrawdownError(Exception):
    status_code = 500

    def __init__(self, message: str) -> None:
        if len(message) > MAX_MESSAGE_LENGTH:
            message = message[: MAX_MESSAGE_LENGTH - 3] + "..."
        super().__init__(message)
        self.message = message


class BadRequest(DrawdownError):
    status_code = 400


class Unauthorized(DrawdownError):
    status_code = 401


class Forbidden(DrawdownError):
    status_code = 403


class NotFound(DrawdownError):
    status_code = 404


class MethodNotAllowed(DrawdownError):
    status_code = 405


class Conflict(DrawdownError):
    status_code = 409


class TooLarge(DrawdownError):
    status_code = 413


class Throttled(DrawdownError):
    status_code = 429

    def __init__(self, message: str, retry_after: int = 1) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class Unavailable(DrawdownError):
    status_code = 503
    retry_after = 1
