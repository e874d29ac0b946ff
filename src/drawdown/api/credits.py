"""Togai's Credits API: grant, details, list, void, balance."""

from typing import Annotated, Any

from fastapi import Depends, Path, Query, Request, Response
from pydantic import TypeAdapter, ValidationError
from starlette.routing import Route

from drawdown.api import render
from drawdown.api.auth import caller, writer
from drawdown.api.errors import validation_message
from drawdown.api.fields import Identifier
from drawdown.api.jsonio import JSONResponse
from drawdown.api.routing import READ, WRITE, Context, context, errors, router
from drawdown.api.schemas import (
    CreateCreditRequest,
    CreateCreditResponse,
    Credit,
    CreditBalanceResponse,
    CreditDetailsResponse,
    CreditGrantBody,
    CreditRequest,
    ListCreditsResponse,
)
from drawdown.errors import BadRequest
from drawdown.ledger.credit import CreditStatus
from drawdown.ledger.requests import GrantRequest
from drawdown.services import credits as service
from drawdown.services.keys import Principal

routes = router()

CreditId = Annotated[Identifier, Path(description="Identifier of the credit")]
AccountId = Annotated[Identifier, Path(description="Identifier of the account")]


def _grant_request(body: CreditRequest) -> GrantRequest:
    return GrantRequest(
        account_id=body.accountId,
        purpose=body.purpose,
        applicable_entity_ids=(
            tuple(body.applicableEntityIds) if body.applicableEntityIds is not None else None
        ),
        effective_from=body.effectiveFrom,
        effective_until=body.effectiveUntil,
        credit_amount=body.creditAmount,
        priority=body.priority,
        grantor_id=body.grantorId,
        idempotency_key=body.idempotencyKey,
    )


@routes.post(
    "/credits",
    operation_id="createCredit",
    responses=errors(*WRITE, 404, 409),
    summary="Grant credits",
    response_model=CreateCreditResponse | Credit,
    tags=["Credits"],
)
async def create_credit(
    body: CreditGrantBody,
    principal: Annotated[Principal, Depends(writer)],
    ctx: Annotated[Context, Depends(context)],
) -> Any:
    batch = isinstance(body, CreateCreditRequest)
    requests = body.creditRequests if isinstance(body, CreateCreditRequest) else [body]
    grants = [_grant_request(r) for r in requests]
    credits = await ctx.writes.grant(principal.org_seq, grants)
    today = ctx.now.date()
    if batch:
        return JSONResponse({"credits": [render.credit(c, today) for c in credits]})
    return JSONResponse(render.credit(credits[0], today))


@routes.get(
    "/credits/{credit_id}",
    operation_id="getCreditDetails",
    responses=errors(*READ, 404),
    summary="Get credit details",
    response_model=CreditDetailsResponse,
    tags=["Credits"],
)
async def get_credit_details(
    credit_id: CreditId,
    principal: Annotated[Principal, Depends(caller)],
    ctx: Annotated[Context, Depends(context)],
) -> Any:
    return await _credit_details(principal, ctx, credit_id)


async def _credit_details(principal: Principal, ctx: Context, credit_id: str) -> Response:
    if ctx.db.is_postgresql:
        body = await service.credit_details_json(ctx.db, principal.org_seq, credit_id, ctx.clock)
        return Response(body, media_type="application/json")
    details = await service.credit_details(ctx.db, principal.org_seq, credit_id, ctx.clock)
    return JSONResponse(render.credit_details(details.credit, details.transactions, ctx.now.date()))


@routes.get(
    "/credits",
    operation_id="listCredits",
    responses=errors(*READ),
    summary="List credits",
    response_model=ListCreditsResponse,
    tags=["Credits"],
)
async def list_credits(
    principal: Annotated[Principal, Depends(caller)],
    ctx: Annotated[Context, Depends(context)],
    next_token: Annotated[str | None, Query(alias="nextToken", max_length=500)] = None,
    status: Annotated[CreditStatus | None, Query()] = None,
    account_id: Annotated[Identifier | None, Query()] = None,
    credit_id: Annotated[Identifier | None, Query(alias="id")] = None,
    page_size: Annotated[int, Query(alias="pageSize", ge=1, le=50)] = 50,
) -> Any:
    page = await service.list_credits(
        ctx.db,
        principal.org_seq,
        ctx.clock,
        page_size=page_size,
        next_token=next_token,
        status=status,
        account_id=account_id,
        credit_id=credit_id,
    )
    body: dict[str, Any] = {"data": [render.credit(c, ctx.now.date()) for c in page.credits]}
    if page.next_token:
        body["nextToken"] = page.next_token
    return JSONResponse(body)


@routes.post(
    "/credits/{credit_id}/void",
    operation_id="voidCredit",
    responses=errors(*WRITE, 404),
    summary="Void a credit",
    response_model=Credit,
    tags=["Credits"],
)
async def void_credit(
    credit_id: CreditId,
    principal: Annotated[Principal, Depends(writer)],
    ctx: Annotated[Context, Depends(context)],
) -> Any:
    credit = await ctx.writes.void(principal.org_seq, credit_id)
    return JSONResponse(render.credit(credit, ctx.now.date()))


@routes.get(
    "/accounts/{account_id}/credit_balance",
    operation_id="creditBalanceForAccount",
    responses=errors(*READ, 404),
    summary="Get the credit balance of an account",
    response_model=CreditBalanceResponse,
    tags=["Credits"],
)
async def credit_balance_for_account(
    account_id: AccountId,
    principal: Annotated[Principal, Depends(caller)],
    ctx: Annotated[Context, Depends(context)],
) -> Any:
    return await _balance(principal, ctx, account_id)


async def _balance(principal: Principal, ctx: Context, account_id: str) -> Response:
    if ctx.db.is_postgresql:
        body = await service.balance_json(ctx.db, principal.org_seq, account_id, ctx.clock)
        return Response(body, media_type="application/json")
    account = await service.account_balance(ctx.db, principal.org_seq, account_id, ctx.clock)
    return JSONResponse(render.balance(account))


# The two hottest reads also as plain Starlette routes, placed ahead of the FastAPI ones (which
# stay for the OpenAPI document and behave the same): FastAPI's dependency resolution and
# parameter validation cost more than the database work of these reads.


_IDENTIFIER: TypeAdapter[str] = TypeAdapter(Identifier)


def _path_id(request: Request, name: str) -> str:
    """The path's id, held to the same `Identifier` rules as the FastAPI routes' parameters."""
    for param in request.query_params:  # as DecimalRoute does for the FastAPI routes
        raise BadRequest(f"{param}: is not a query parameter of this endpoint (it takes: none)")
    try:
        return _IDENTIFIER.validate_python(request.path_params[name])
    except ValidationError as error:
        problems = [{**e, "loc": ("path", name, *e["loc"])} for e in error.errors()]
        raise BadRequest(validation_message(problems)) from None


async def _fast_credit_details(request: Request) -> Response:
    principal = await caller(request)
    credit_id = _path_id(request, "credit_id")
    return await _credit_details(principal, await context(request), credit_id)


async def _fast_balance(request: Request) -> Response:
    principal = await caller(request)
    account_id = _path_id(request, "account_id")
    return await _balance(principal, await context(request), account_id)


fast_routes = [
    Route("/credits/{credit_id}", _fast_credit_details, methods=["GET"]),
    Route("/accounts/{account_id}/credit_balance", _fast_balance, methods=["GET"]),
]
