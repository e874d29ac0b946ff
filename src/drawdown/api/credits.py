"""Togai's Credits API: grant, details, list, void, balance."""

from typing import Annotated, Any

from fastapi import APIRouter, Query, Response

from drawdown.api import bodies, render
from drawdown.api.endpoints import Body, Call, Endpoint
from drawdown.api.fields import Identifier
from drawdown.api.jsonio import JSONResponse
from drawdown.api.parameters import NextToken, PageSize, Reader, RequestContext
from drawdown.api.routing import READ, WRITE, errors, router
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
from drawdown.ledger.credit import CreditStatus
from drawdown.ledger.requests import GrantRequest
from drawdown.services import credits as service

listing = router()

CREDIT_ID = {"credit_id": "Identifier of the credit"}
ACCOUNT_ID = {"account_id": "Identifier of the account"}


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


def _grants(body: CreateCreditRequest | CreditRequest) -> bodies.Grants:
    if isinstance(body, CreateCreditRequest):
        return bodies.Grants(True, [_grant_request(r) for r in body.creditRequests])
    return bodies.Grants(False, [_grant_request(body)])


async def create_credit(call: Call) -> Response:
    grants: bodies.Grants = call.body
    today = call.today()
    credits = await call.writes.grant(call.org_seq, grants.requests, call.actor)
    if grants.batch:
        return JSONResponse({"credits": [render.credit(c, today) for c in credits]})
    return JSONResponse(render.credit(credits[0], today))


create = Endpoint(
    "POST",
    "/credits",
    operation_id="createCredit",
    summary="Grant credits",
    tag="Credits",
    response_model=CreateCreditResponse | Credit,
    statuses=(*WRITE, 404, 409),
    handler=create_credit,
    path_params={},
    body=Body(bodies.grants, CreditGrantBody, _grants),
    writes=True,
)


async def get_credit_details(call: Call) -> Response:
    credit_id = call.path["credit_id"]
    if call.db.is_postgresql:
        body = await service.credit_details_json(call.db, call.org_seq, credit_id, call.clock)
        return Response(body, media_type="application/json")
    today = call.today()
    details = await service.credit_details(call.db, call.org_seq, credit_id, call.clock)
    return JSONResponse(render.credit_details(details.credit, details.transactions, today))


details = Endpoint(
    "GET",
    "/credits/{credit_id}",
    operation_id="getCreditDetails",
    summary="Get credit details",
    tag="Credits",
    response_model=CreditDetailsResponse,
    statuses=(*READ, 404),
    handler=get_credit_details,
    path_params=CREDIT_ID,
)


@listing.get(
    "/credits",
    operation_id="listCredits",
    responses=errors(*READ),
    summary="List credits",
    response_model=ListCreditsResponse,
    tags=["Credits"],
)
async def list_credits(
    principal: Reader,
    ctx: RequestContext,
    next_token: NextToken = None,
    status: Annotated[CreditStatus | None, Query()] = None,
    account_id: Annotated[Identifier | None, Query()] = None,
    credit_id: Annotated[Identifier | None, Query(alias="id")] = None,
    page_size: PageSize = 50,
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


async def void_credit(call: Call) -> Response:
    today = call.today()
    credit = await call.writes.void(call.org_seq, call.path["credit_id"], call.actor)
    return JSONResponse(render.credit(credit, today))


void = Endpoint(
    "POST",
    "/credits/{credit_id}/void",
    operation_id="voidCredit",
    summary="Void a credit",
    tag="Credits",
    response_model=Credit,
    statuses=(*WRITE, 404),
    handler=void_credit,
    path_params=CREDIT_ID,
    writes=True,
)


async def credit_balance_for_account(call: Call) -> Response:
    account_id = call.path["account_id"]
    if call.db.is_postgresql:
        body = await service.balance_json(call.db, call.org_seq, account_id, call.clock)
        return Response(body, media_type="application/json")
    account = await service.account_balance(call.db, call.org_seq, account_id, call.clock)
    return JSONResponse(render.balance(account))


balance = Endpoint(
    "GET",
    "/accounts/{account_id}/credit_balance",
    operation_id="creditBalanceForAccount",
    summary="Get the credit balance of an account",
    tag="Credits",
    response_model=CreditBalanceResponse,
    statuses=(*READ, 404),
    handler=credit_balance_for_account,
    path_params=ACCOUNT_ID,
)

# in the order of the document
routes: list[Endpoint | APIRouter] = [create, details, listing, void, balance]
