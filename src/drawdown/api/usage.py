"""drawdown's usage API (docs/usage.md): usage meters with their credit rates, and what an
account's usage drew. Ingestion is api/ingest.py."""

from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Path, Query

from drawdown.api import ingest, render_usage
from drawdown.api.endpoints import Endpoint
from drawdown.api.jsonio import JSONResponse
from drawdown.api.parameters import AccountId, NextToken, PageSize, Reader, RequestContext, Writer
from drawdown.api.routing import READ, WRITE, errors, router
from drawdown.api.usage_schemas import (
    AccountUsage,
    CreateUsageMeterRequest,
    EventIdentifier,
    MeterIdentifier,
    UpdateUsageMeterRequest,
    UsageEvent,
    UsageEventList,
    UsageMeter,
    UsageMeterList,
)
from drawdown.errors import BadRequest
from drawdown.ledger.events import Refused, parse_timestamp
from drawdown.ledger.usage import Aggregation, MeterStatus, Rate
from drawdown.services import usage as service

meters = router()
reads = router()

MeterId = Annotated[MeterIdentifier, Path(description="Identifier of the usage meter")]
EventId = Annotated[EventIdentifier, Path(description="Identifier of the event")]
TAG = "Usage"


def _time_parameter(name: str, value: str | None) -> datetime | None:
    if value is None:
        return None
    try:
        return parse_timestamp(value)
    except Refused as refused:
        raise BadRequest(f"{name}: {str(refused).removeprefix('timestamp: ')}") from None


@meters.post(
    "/usage_meters",
    operation_id="createUsageMeter",
    responses=errors(*WRITE, 409),
    summary="Create a usage meter with its credit rate",
    status_code=201,
    response_model=UsageMeter,
    tags=[TAG],
)
async def create_usage_meter(
    body: CreateUsageMeterRequest,
    principal: Writer,
    ctx: RequestContext,
) -> Any:
    rate = body.creditRate
    definition = service.MeterDefinition(
        id=body.id,
        name=body.name,
        event_schema_name=body.eventSchemaName,
        aggregation=Aggregation(body.aggregation),
        attribute=body.attribute,
        filters=tuple((f.field.removeprefix("dimensions."), f.value) for f in body.filters),
        rate=Rate(rate.credits, rate.perQuantity, body.effectiveFrom),
    )
    meter = await service.create_meter(ctx.db, principal.org_seq, definition, ctx.now)
    return JSONResponse(render_usage.meter(meter), 201)


@meters.get(
    "/usage_meters",
    operation_id="listUsageMeters",
    responses=errors(*READ),
    summary="List usage meters",
    response_model=UsageMeterList,
    tags=[TAG],
)
async def list_usage_meters(
    principal: Reader,
    ctx: RequestContext,
    next_token: NextToken = None,
    page_size: PageSize = 50,
) -> Any:
    found, token = await service.list_meters(
        ctx.db, principal.org_seq, page_size=page_size, next_token=next_token
    )
    body: dict[str, Any] = {"data": [render_usage.meter(m) for m in found]}
    if token:
        body["nextToken"] = token
    return JSONResponse(body)


@meters.get(
    "/usage_meters/{meter_id}",
    operation_id="getUsageMeter",
    responses=errors(*READ, 404),
    summary="Get a usage meter",
    response_model=UsageMeter,
    tags=[TAG],
)
async def get_usage_meter(
    meter_id: MeterId,
    principal: Reader,
    ctx: RequestContext,
) -> Any:
    meter = await service.get_meter(ctx.db, principal.org_seq, meter_id)
    return JSONResponse(render_usage.meter(meter))


@meters.patch(
    "/usage_meters/{meter_id}",
    operation_id="updateUsageMeterRate",
    responses=errors(*WRITE, 404),
    summary="Add a credit rate, in effect from a time later than the latest rate's",
    response_model=UsageMeter,
    tags=[TAG],
)
async def update_usage_meter(
    meter_id: MeterId,
    body: UpdateUsageMeterRequest,
    principal: Writer,
    ctx: RequestContext,
) -> Any:
    rate = Rate(body.creditRate.credits, body.creditRate.perQuantity, body.effectiveFrom)
    meter = await service.add_rate(ctx.db, principal.org_seq, meter_id, rate, ctx.now)
    return JSONResponse(render_usage.meter(meter))


def _status_route(status: MeterStatus, path: str, operation_id: str, summary: str) -> None:
    @meters.post(
        path,
        operation_id=operation_id,
        responses=errors(*WRITE, 404),
        summary=summary,
        response_model=UsageMeter,
        tags=[TAG],
    )
    async def change_status(
        meter_id: MeterId,
        principal: Writer,
        ctx: RequestContext,
    ) -> Any:
        meter = await service.set_status(ctx.db, principal.org_seq, meter_id, status, ctx.now)
        return JSONResponse(render_usage.meter(meter))

    change_status.__name__ = operation_id


_status_route(
    MeterStatus.INACTIVE,
    "/usage_meters/{meter_id}/deactivate",
    "deactivateUsageMeter",
    "Deactivate a usage meter: events applied while it is inactive do not match it",
)
_status_route(
    MeterStatus.ACTIVE,
    "/usage_meters/{meter_id}/activate",
    "activateUsageMeter",
    "Activate a usage meter",
)

From = Annotated[str | None, Query(alias="from", max_length=64)]
To = Annotated[str | None, Query(alias="to", max_length=64)]


@reads.get(
    "/accounts/{account_id}/usage",
    operation_id="getAccountUsage",
    responses=errors(*READ, 404),
    summary="An account's usage per meter: what it cost and what paid for it",
    response_model=AccountUsage,
    tags=[TAG],
)
async def get_account_usage(
    account_id: AccountId,
    principal: Reader,
    ctx: RequestContext,
    since: From = None,
    until: To = None,
) -> Any:
    found = await service.account_usage(
        ctx.db,
        principal.org_seq,
        account_id,
        _time_parameter("from", since),
        _time_parameter("to", until),
    )
    return JSONResponse(render_usage.account_usage(found))


@reads.get(
    "/accounts/{account_id}/usage/events",
    operation_id="listAccountUsageEvents",
    responses=errors(*READ, 404),
    summary="An account's usage events, newest first",
    response_model=UsageEventList,
    tags=[TAG],
)
async def list_account_usage_events(
    account_id: AccountId,
    principal: Reader,
    ctx: RequestContext,
    meter_id: Annotated[MeterIdentifier | None, Query(alias="meterId")] = None,
    since: From = None,
    until: To = None,
    next_token: Annotated[str | None, Query(alias="nextToken", max_length=1500)] = None,
    page_size: PageSize = 50,
) -> Any:
    page = await service.account_events(
        ctx.db,
        principal.org_seq,
        account_id,
        meter_id=meter_id,
        since=_time_parameter("from", since),
        until=_time_parameter("to", until),
        page_size=page_size,
        next_token=next_token,
    )
    body: dict[str, Any] = {"data": [render_usage.event(e) for e in page.events]}
    if page.next_token:
        body["nextToken"] = page.next_token
    return JSONResponse(body)


@reads.get(
    "/usage/events/{event_id}",
    operation_id="getUsageEvent",
    responses=errors(*READ, 404),
    summary="One usage event: how it was priced and what paid for it",
    response_model=UsageEvent,
    tags=[TAG],
)
async def get_usage_event(
    event_id: EventId,
    principal: Reader,
    ctx: RequestContext,
) -> Any:
    found = await service.event(ctx.db, principal.org_seq, event_id)
    return JSONResponse(render_usage.event(found))


# in the order of the document
routes: list[Endpoint | APIRouter] = [*ingest.routes, meters, reads]
