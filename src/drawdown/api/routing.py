"""What every router shares: decimal JSON bodies, the bearer key, the documented error statuses,
the state."""

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from fastapi import APIRouter, Depends, Request
from fastapi.security import HTTPBearer

from drawdown.api.jsonio import DecimalRoute, JSONResponse
from drawdown.api.schemas import ErrorResponse
from drawdown.clock import Clock
from drawdown.services.webhook_settings import WebhookSettings
from drawdown.services.writes import Writes
from drawdown.store.database import Database

# Declares the key for the document (and for /docs' "Authorize"); `auth.caller` checks it.
bearer = HTTPBearer(
    scheme_name="bearerAuth",
    bearerFormat="API key",
    description="An API key made by `drawdown keys create`, sent as `Authorization: Bearer <key>`",
    auto_error=False,
)

_RETRY_AFTER = {
    "Retry-After": {
        "description": "Seconds to wait before trying again",
        "schema": {"type": "integer", "minimum": 1},
    }
}

_DESCRIPTIONS = {
    400: "Bad input (the message names the field); nothing was changed",
    401: "No API key, or one that is not valid",
    403: "The API key is read-only",
    404: "Not found in this organization",
    409: "Conflicts with what exists",
    413: "The request body is larger than 1 MiB (/ingestBatch: DRAWDOWN_MAX_BATCH_BYTES, 16 MiB "
    "by default)",
    429: "Too many requests for this API key; retry after Retry-After seconds",
    503: "The database is unreachable or busy; the request was not applied; retry after "
    "Retry-After seconds",
}


def errors(*statuses: int) -> dict[int | str, dict[str, object]]:
    """The documented error answers of a route: exactly the statuses it can send."""
    out: dict[int | str, dict[str, object]] = {}
    for status in sorted(statuses):
        entry: dict[str, object] = {"model": ErrorResponse, "description": _DESCRIPTIONS[status]}
        if status in (429, 503):
            entry["headers"] = _RETRY_AFTER
        out[status] = entry
    return out


# What every route behind a key can answer: bad parameters, no key, throttled, database away.
READ = (400, 401, 429, 503)
# ... and a write also: a read-only key, a body too large.
WRITE = (*READ, 403, 413)


def router() -> APIRouter:
    """A router whose routes need the API key; each route lists its own error statuses."""
    return APIRouter(
        route_class=DecimalRoute,
        default_response_class=JSONResponse,
        dependencies=[Depends(bearer)],
    )


@dataclass(frozen=True)
class Context:
    db: Database
    now: datetime  # when the request arrived
    clock: Clock  # writes read it again once they hold their account's lock
    writes: Writes
    webhooks: WebhookSettings
    wake_delivery: Callable[[], None]


async def context(request: Request) -> Context:
    # async on purpose: FastAPI runs a plain `def` dependency in a thread pool
    state = request.app.state
    clock: Clock = state.clock
    return Context(state.db, clock.now(), clock, state.writes, state.webhooks, state.deliverer.wake)
