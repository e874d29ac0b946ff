"""drawdown's applications API: credits applied to invoices, held or debited."""

from typing import Annotated, Any

from fastapi import Depends, Path, Query

from drawdown.api import render
from drawdown.api.auth import caller, writer
from drawdown.api.fields import Identifier
from drawdown.api.jsonio import JSONResponse
from drawdown.api.routing import READ, WRITE, Context, context, errors, router
from drawdown.api.schemas import (
    CreditApplication,
    CreditApplicationList,
    CreditApplicationRequest,
    InvoiceIdentifier,
)
from drawdown.ledger.allocation import EntityType, LineItem
from drawdown.ledger.application import ApplicationMode
from drawdown.ledger.requests import ApplicationRequest
from drawdown.services import applications as service
from drawdown.services.keys import Principal

routes = router()

AccountId = Annotated[Identifier, Path(description="Identifier of the account")]
InvoiceId = Annotated[InvoiceIdentifier, Path(description="Identifier of the invoice")]
BASE = "/accounts/{account_id}/credit_applications"


@routes.post(
    BASE,
    operation_id="applyCredits",
    responses=errors(*WRITE, 404, 409),
    summary="Apply credits to an invoice (HOLD or DEBIT)",
    response_model=CreditApplication,
    tags=["Credit applications"],
)
async def apply_credits(
    account_id: AccountId,
    body: CreditApplicationRequest,
    principal: Annotated[Principal, Depends(writer)],
    ctx: Annotated[Context, Depends(context)],
) -> Any:
    request = ApplicationRequest(
        invoice_id=body.invoiceId,
        mode=ApplicationMode(body.mode),
        as_of=body.asOf,
        line_items=tuple(
            LineItem(item.entityId, EntityType(item.entityType), item.amount)
            for item in body.lineItems
        ),
    )
    application = await ctx.writes.apply(principal.org_seq, account_id, request)
    return JSONResponse(render.application(application))


@routes.get(
    BASE,
    operation_id="listCreditApplications",
    responses=errors(*READ, 404),
    summary="List an account's credit applications",
    response_model=CreditApplicationList,
    tags=["Credit applications"],
)
async def list_credit_applications(
    account_id: AccountId,
    principal: Annotated[Principal, Depends(caller)],
    ctx: Annotated[Context, Depends(context)],
    next_token: Annotated[str | None, Query(alias="nextToken", max_length=500)] = None,
    page_size: Annotated[int, Query(alias="pageSize", ge=1, le=50)] = 50,
) -> Any:
    async with ctx.db.read() as conn:
        page = await service.list_page(
            conn, principal.org_seq, account_id, page_size=page_size, next_token=next_token
        )
    body: dict[str, Any] = {"data": [render.application(a) for a in page.applications]}
    if page.next_token:
        body["nextToken"] = page.next_token
    return JSONResponse(body)


@routes.get(
    BASE + "/{invoice_id}",
    operation_id="getCreditApplication",
    responses=errors(*READ, 404),
    summary="Get the credit application of an invoice",
    response_model=CreditApplication,
    tags=["Credit applications"],
)
async def get_credit_application(
    account_id: AccountId,
    invoice_id: InvoiceId,
    principal: Annotated[Principal, Depends(caller)],
    ctx: Annotated[Context, Depends(context)],
) -> Any:
    async with ctx.db.read() as conn:
        application = await service.get(conn, principal.org_seq, account_id, invoice_id)
    return JSONResponse(render.application(application))


@routes.post(
    BASE + "/{invoice_id}/capture",
    operation_id="captureCreditApplication",
    responses=errors(*WRITE, 404, 409),
    summary="Debit what an application holds",
    response_model=CreditApplication,
    tags=["Credit applications"],
)
async def capture_credit_application(
    account_id: AccountId,
    invoice_id: InvoiceId,
    principal: Annotated[Principal, Depends(writer)],
    ctx: Annotated[Context, Depends(context)],
) -> Any:
    application = await ctx.writes.capture(principal.org_seq, account_id, invoice_id)
    return JSONResponse(render.application(application))


@routes.post(
    BASE + "/{invoice_id}/release",
    operation_id="releaseCreditApplication",
    responses=errors(*WRITE, 404, 409),
    summary="Give back what an application holds",
    response_model=CreditApplication,
    tags=["Credit applications"],
)
async def release_credit_application(
    account_id: AccountId,
    invoice_id: InvoiceId,
    principal: Annotated[Principal, Depends(writer)],
    ctx: Annotated[Context, Depends(context)],
) -> Any:
    application = await ctx.writes.release(principal.org_seq, account_id, invoice_id)
    return JSONResponse(render.application(application))
