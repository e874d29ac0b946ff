"""405 answers that list every method the path allows, across all the routes that share it.

Starlette answers 405 from the first route whose path matched, so `Allow` named only that
route's method (`/credits` has a GET route and a POST route, and fast routes stand ahead)."""

from fastapi import FastAPI, Request, Response
from fastapi.routing import iter_route_contexts
from starlette.exceptions import HTTPException
from starlette.routing import Match

from drawdown.api.errors import error_response


def allowed_methods(app: FastAPI, request: Request) -> set[str]:
    allowed: set[str] = set()
    # included routers nest their routes; iter_route_contexts reaches each one, as the
    # OpenAPI document does
    for route in iter_route_contexts(app.router.routes):
        match, _ = route.matches(request.scope)
        methods = getattr(route, "methods", None)
        if match != Match.NONE and methods:
            allowed |= methods
    return allowed


def install(app: FastAPI) -> None:
    async def method_not_allowed(request: Request, error: Exception) -> Response:
        assert isinstance(error, HTTPException)
        allowed = allowed_methods(app, request) or set(
            (error.headers or {}).get("Allow", "GET, HEAD").split(", ")
        )
        return error_response(
            405,
            f"{request.method} is not allowed on {request.url.path}; "
            f"allowed: {', '.join(sorted(allowed))}",
            {"Allow": ", ".join(sorted(allowed))},
        )

    app.add_exception_handler(405, method_not_allowed)
