"""What every router shares: decimal JSON bodies, the documented error shape, the state."""

from dataclasses import dataclass
from datetime import datetime

from fastapi import APIRouter, Request

from drawdown.api.jsonio import DecimalRoute, JSONResponse
from drawdown.api.schemas import ErrorResponse
from drawdown.clock import Clock
from drawdown.store.database import Database

ERROR_RESPONSES: dict[int | str, dict[str, object]] = {
    status: {"model": ErrorResponse, "description": description}
    for status, description in (
        (400, "Bad input; nothing was changed"),
        (401, "No or unknown API key"),
        (403, "The API key may not do this"),
        (404, "Not found in this organization"),
        (409, "Conflicts with what exists"),
        (429, "Throttled"),
    )
}


def router() -> APIRouter:
    return APIRouter(
        route_class=DecimalRoute, responses=ERROR_RESPONSES, default_response_class=JSONResponse
    )


@dataclass(frozen=True)
class Context:
    db: Database
    now: datetime  # when the request arrived
    clock: Clock  # writes read it again once they hold their account's lock


async def context(request: Request) -> Context:
    # async on purpose: FastAPI runs a plain `def` dependency in a thread pool
    state = request.app.state
    clock: Clock = state.clock
    return Context(state.db, clock.now(), clock)
