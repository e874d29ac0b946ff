"""Liveness without the database, readiness with it."""

from typing import Any, Literal

from fastapi import APIRouter, Request

from drawdown.api.errors import domain_error_response, error_response
from drawdown.api.jsonio import JSONResponse
from drawdown.api.read_deadline import within
from drawdown.api.routing import errors
from drawdown.api.schemas import Out
from drawdown.errors import Unavailable

routes = APIRouter(default_response_class=JSONResponse)


class Status(Out):
    status: Literal["ok"]


@routes.get("/health", operation_id="health", tags=["Health"], response_model=Status)
async def health() -> Any:
    return JSONResponse({"status": "ok"})


@routes.get(
    "/ready", operation_id="ready", tags=["Health"], response_model=Status, responses=errors(503)
)
async def ready(request: Request) -> Any:
    try:
        db = request.app.state.db
        await within(db.silent_after, db.ping())
    except Unavailable as error:
        return domain_error_response(error)
    except Exception as error:  # any failure to reach the database means "not ready"
        return error_response(
            503, f"the database is not reachable: {type(error).__name__}", {"Retry-After": "1"}
        )
    return JSONResponse({"status": "ok"})
