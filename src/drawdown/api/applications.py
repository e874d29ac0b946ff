"""drawdown's applications API: credits applied to invoices, held or debited."""

from typing import Annotated, Any

from fastapi import APIRouter, Path, Response

from drawdown.api import bodies, render
from drawdown.api.endpoints import Body, Call, Endpoint
from drawdown.api.jsonio import JSONResponse
from drawdown.api.parameters import AccountId, NextToken, PageSize, Reader, RequestContext
from drawdown.api.routing import READ, WRITE, errors, router
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

listing = router()

ACCOUNT_ID = {"account_id": "Identifier of the account"}
INVOICE_ID = {**ACCOUNT_ID, "invoice_id": "Identifier of the invoice"}
InvoiceId = Annotated[InvoiceIdentifier, Path(description="Identifier of the invoice")]
BASE = "/accounts/{account_id}/credit_applications"


def _application_request(body: CreditApplicationRequest) -> ApplicationRequest:
    return ApplicationRequest(
        invoice_id=body.invoiceId,
        mode=ApplicationMode(body.mode),
        as_of=body.asOf,
        line_items=tuple(
            LineItem(item.entityId, EntityType(item.entityType), item.amount)
            for item in body.lineItems
        ),
        use_wallet=body.useWallet,
    )


async def apply_credits(call: Call) -> Response:
    application = await call.writes.apply(
        call.org_seq, call.path["account_id"], call.body, call.actor
    )
    return JSONResponse(render.application(application))


apply = Endpoint(
    "POST",
    BASE,
    operation_id="applyCredits",
    summary="Apply credits to an invoice (HOLD or DEBIT)",
    tag="Credit applications",
    response_model=CreditApplication,
    statuses=(*WRITE, 404, 409),
    handler=apply_credits,
    path_params=ACCOUNT_ID,
    body=Body(bodies.application, CreditApplicationRequest, _application_request),
    writes=True,
)


@listing.get(
    BASE,
    operation_id="listCreditApplications",
    responses=errors(*READ, 404),
    summary="List an account's credit applications",
    response_model=CreditApplicationList,
    tags=["Credit applications"],
)
async def list_credit_applications(
    account_id: AccountId,
    principal: Reader,
    ctx: RequestContext,
    next_token: NextToken = None,
    page_size: PageSize = 50,
) -> Any:
    async with ctx.db.read() as conn:
        page = await service.list_page(
            conn, principal.org_seq, account_id, page_size=page_size, next_token=next_token
        )
    body: dict[str, Any] = {"data": [render.application(a) for a in page.applications]}
    if page.next_token:
        body["nextToken"] = page.next_token
    return JSONResponse(body)


@listing.get(
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
    principal: Reader,
    ctx: RequestContext,
) -> Any:
    async with ctx.db.read() as conn:
        application = await service.get(conn, principal.org_seq, account_id, invoice_id)
    return JSONResponse(render.application(application))


async def capture_credit_application(call: Call) -> Response:
    account_id, invoice_id = call.path["account_id"], call.path["invoice_id"]
    application = await call.writes.capture(call.org_seq, account_id, invoice_id, call.actor)
    return JSONResponse(render.application(application))


capture = Endpoint(
    "POST",
    BASE + "/{invoice_id}/capture",
    operation_id="captureCreditApplication",
    summary="Debit what an application holds",
    tag="Credit applications",
    response_model=CreditApplication,
    statuses=(*WRITE, 404, 409),
    handler=capture_credit_application,
    path_params=INVOICE_ID,
    writes=True,
)


async def release_credit_application(call: Call) -> Response:
    account_id, invoice_id = call.path["account_id"], call.path["invoice_id"]
    application = await call.writes.release(call.org_seq, account_id, invoice_id, call.actor)
    return JSONResponse(render.application(application))


release = Endpoint(
    "POST",
    BASE + "/{invoice_id}/release",
    operation_id="releaseCreditApplication",
    summary="Give back what an application holds",
    tag="Credit applications",
    response_model=CreditApplication,
    statuses=(*WRITE, 404, 409),
    handler=release_credit_application,
    path_params=INVOICE_ID,
    writes=True,
)

# in the order of the document
routes: list[Endpoint | APIRouter] = [apply, listing, capture, release]
