"""The hot endpoints (the money writes and the two busiest reads), each declared once: method,
path, operation id, path parameters, body, response model, error statuses, handler. From the
declaration come both the plain Starlette route that serves it and its entry in the OpenAPI
document, so there is no twin route to keep in step.

Serving costs no dependency resolution and no pydantic: the key is checked by `auth.writer` or
`auth.caller`, path ids by one regular expression, and a body is decoded straight into typed
structs (`api/bodies.py`). Whatever the fast checks do not accept at once is judged by the
documented models exactly as FastAPI judges the other routes, in the same order (query
parameters, then the body's JSON, then the key, then the path and the body's fields), so every
refusal keeps its words.
"""

import email.message
import functools
import inspect
import json
import re
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from datetime import date, datetime
from typing import Annotated, Any, Generic, Literal, TypeVar

from fastapi import Depends, FastAPI, Path, Request, Response
from fastapi.routing import APIRoute, APIRouter
from pydantic import TypeAdapter, ValidationError
from starlette.routing import BaseRoute, Route

from drawdown.api import jsonio
from drawdown.api.auth import caller, writer
from drawdown.api.errors import validation_message
from drawdown.api.fields import IDENTIFIER_MAX_LENGTH, Identifier
from drawdown.api.routing import bearer, errors
from drawdown.clock import Clock
from drawdown.errors import BadRequest
from drawdown.services.keys import Principal
from drawdown.services.writes import Writes
from drawdown.store.database import Database

T = TypeVar("T")


@dataclass(frozen=True)
class Body(Generic[T]):
    """What an endpoint makes of its request body.

    `fast` decodes the bytes (typed structs) or answers None for anything it does not accept
    at once; `documented` (pydantic, `api/schemas.py`) is what the document shows and what
    judges those bodies; `from_documented` turns what it accepts into the same value."""

    fast: Callable[[bytes], T | None]
    documented: Any
    from_documented: Callable[[Any], T]


@dataclass(frozen=True)
class Call:
    """One request to an endpoint, checked: who calls, the path's ids, the decoded body."""

    request: Request
    principal: Principal
    path: dict[str, str]
    body: Any
    now: datetime  # when the request arrived; writes read the clock again under their lock

    @property
    def org_seq(self) -> int:
        return self.principal.org_seq

    @property
    def actor(self) -> str:
        """Who the events of this request's changes name: its API key's id."""
        return self.principal.key_id

    @property
    def writes(self) -> Writes:
        writes: Writes = self.request.app.state.writes
        return writes

    @property
    def db(self) -> Database:
        db: Database = self.request.app.state.db
        return db

    @property
    def clock(self) -> Clock:
        clock: Clock = self.request.app.state.clock
        return clock

    def today(self) -> date:
        return self.now.date()


Handler = Callable[[Call], Awaitable[Response]]


@dataclass(frozen=True)
class Endpoint:
    method: Literal["GET", "POST"]
    path: str
    operation_id: str
    summary: str
    tag: str
    response_model: Any
    statuses: tuple[int, ...]  # the error statuses it can answer (routing.READ, WRITE, ...)
    handler: Handler
    path_params: dict[str, str]  # name: description; each an `Identifier`
    body: Body[Any] | None = None
    writes: bool = False  # needs a read-write key
    status_code: int = 200  # its answer when all went well
    also: tuple[int, ...] = ()  # other statuses it answers with the response model (207)


_IDENTIFIER = re.compile(r"[^\s/\x00-\x1f\x7f-\x9f]+")  # fields.IDENTIFIER_PATTERN, unanchored
_IDENTIFIER_ADAPTER: TypeAdapter[str] = TypeAdapter(Identifier)
_NO_BODY = object()  # the endpoint takes none, or the fast path decoded it
_MISSING = object()  # the request sent none


class EndpointRoute(Route):
    """The Starlette route of an endpoint; `documentation` is the FastAPI route the document
    is made from, never served."""

    def __init__(self, endpoint: Endpoint) -> None:
        self.declared = endpoint
        self.documentation = _documentation(endpoint)
        self._body_adapter = TypeAdapter(endpoint.body.documented) if endpoint.body else None
        super().__init__(
            endpoint.path, self._serve, methods=[endpoint.method], name=endpoint.operation_id
        )

    async def _serve(self, request: Request) -> Response:
        # No api/read_deadline.py task here (these are the hottest reads): on PostgreSQL their
        # statements answer in bounded time by themselves (store/database.FastReads)
        endpoint = self.declared
        if request.scope["query_string"]:
            _refuse_query_parameters(request)
        body: Any = None
        documented_input: Any = _NO_BODY
        if endpoint.body is not None:
            raw = await request.body()
            json_body = bool(raw) and _is_json(request.headers.get("content-type"))
            body = endpoint.body.fast(raw) if json_body else None
            if body is None:
                # as FastAPI: the JSON is read (and refused in jsonio's words) before the key
                documented_input = _documented_input(raw, json_body)
        principal = await (writer(request) if endpoint.writes else caller(request))
        path: dict[str, str] = request.path_params
        if documented_input is not _NO_BODY or not all(_fits(path[name]) for name in path):
            body = self._judge(path, documented_input, body)
        now = request.app.state.clock.now()
        return await endpoint.handler(Call(request, principal, path, body, now))

    def _judge(self, path: dict[str, str], documented_input: Any, fast_body: Any) -> Any:
        """The documented models' verdict, in FastAPI's words (every problem of the path's ids
        and of the body, the first named), and the body they accept."""
        problems: list[dict[str, Any]] = []
        for name in self.declared.path_params:
            problems += _validate(_IDENTIFIER_ADAPTER, path[name], ("path", name))[1]
        body = fast_body
        if documented_input is _MISSING:
            problems.append({"type": "missing", "loc": ("body",), "msg": "Field required"})
        elif documented_input is not _NO_BODY:
            assert self.declared.body is not None and self._body_adapter is not None
            model, found = _validate(self._body_adapter, documented_input, ("body",))
            problems += found
            if not found:
                body = self.declared.body.from_documented(model)
        if problems:
            raise BadRequest(validation_message(problems))
        return body


def _fits(value: str) -> bool:
    return len(value) <= IDENTIFIER_MAX_LENGTH and _IDENTIFIER.fullmatch(value) is not None


def _validate(
    adapter: TypeAdapter[Any], value: Any, where: tuple[str, ...]
) -> tuple[Any, list[dict[str, Any]]]:
    """As FastAPI validates a parameter or a body: the value, or its problems located."""
    try:
        return adapter.validate_python(value, from_attributes=True), []
    except ValidationError as error:
        problems = error.errors(include_url=False)
        return None, [{**e, "loc": (*where, *e["loc"])} for e in problems]


def _refuse_query_parameters(request: Request) -> None:
    # No endpoint here takes a query parameter (as jsonio.DecimalRoute words it).
    for name in request.query_params:
        raise BadRequest(f"{name}: is not a query parameter of this endpoint (it takes: none)")


@functools.lru_cache(maxsize=64)
def _is_json(content_type: str | None) -> bool:
    """Whether FastAPI would read a body of this Content-Type as JSON (it needs one)."""
    if not content_type:
        return False
    message = email.message.Message()
    message["content-type"] = content_type
    if message.get_content_maintype() != "application":
        return False
    subtype = message.get_content_subtype()
    return subtype == "json" or subtype.endswith("+json")


def _documented_input(raw: bytes, json_body: bool) -> Any:
    """The body as FastAPI hands it to the documented model: missing, JSON, or the bytes."""
    if not raw:
        return _MISSING
    if not json_body:
        return raw
    try:
        return jsonio.decode(raw)
    except json.JSONDecodeError as error:  # FastAPI's words for what json.loads refuses
        problem = {"type": "json_invalid", "loc": ("body", error.pos), "msg": "JSON decode error"}
        raise BadRequest(validation_message([problem])) from None


def _documentation(endpoint: Endpoint) -> APIRoute:
    """The FastAPI route the document describes the endpoint by: the same parameters, body,
    response model, statuses and bearer key as a FastAPI route of the same declaration."""
    kind = inspect.Parameter.POSITIONAL_OR_KEYWORD
    parameters = [
        inspect.Parameter(name, kind, annotation=Annotated[Identifier, Path(description=text)])
        for name, text in endpoint.path_params.items()
    ]
    if endpoint.body is not None:
        parameters.append(inspect.Parameter("body", kind, annotation=endpoint.body.documented))

    async def documented(**_: Any) -> None:
        raise AssertionError("documentation only; EndpointRoute serves the endpoint")

    documented.__signature__ = inspect.Signature(parameters)  # type: ignore[attr-defined]
    documented.__name__ = endpoint.handler.__name__
    responses = errors(*endpoint.statuses)
    for status in endpoint.also:
        responses[status] = {
            "model": endpoint.response_model,
            "description": "Some were refused, each named; the others were accepted",
        }
    return APIRoute(
        endpoint.path,
        documented,
        methods=[endpoint.method],
        operation_id=endpoint.operation_id,
        summary=endpoint.summary,
        tags=[endpoint.tag],
        response_model=endpoint.response_model,
        status_code=endpoint.status_code,
        responses=responses,
        dependencies=[Depends(bearer)],
        response_class=jsonio.JSONResponse,
    )


def mount(app: FastAPI, parts: Iterable[Endpoint | APIRouter]) -> None:
    """Adds the endpoints and FastAPI routers; the document lists them in this order, while
    the endpoints are matched first (each router ahead of them would cost every hot request a
    match of all its routes)."""
    document: list[BaseRoute] = []
    hot: list[EndpointRoute] = []
    for part in parts:
        if isinstance(part, APIRouter):
            app.include_router(part)
            document.append(app.router.routes[-1])
        else:
            route = EndpointRoute(part)
            hot.append(route)
            document.append(route.documentation)
    app.router.routes[:0] = hot
    app.state.document_routes = document


def document_routes(app: FastAPI) -> list[BaseRoute]:
    """The routes the document is made from: each endpoint as its documentation route, in the
    order they were mounted."""
    routes: list[BaseRoute] = app.state.document_routes
    return routes
