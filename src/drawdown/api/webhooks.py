"""Webhook endpoints, their deliveries and replays, the events list, and balance alerts
(docs/webhooks.md)."""

from typing import Annotated, Any

import msgspec
from fastapi import Path, Query, Response
from sqlalchemy import Row

from drawdown.api.fields import Identifier
from drawdown.api.jsonio import JSONResponse, money
from drawdown.api.parameters import AccountId, NextToken, PageSize, Reader, RequestContext, Writer
from drawdown.api.routing import READ, WRITE, errors, router
from drawdown.api.webhook_schemas import (
    AccountBalanceAlerts,
    AccountBalanceAlertsRequest,
    BalanceAlerts,
    BalanceAlertsRequest,
    CreateWebhookEndpointRequest,
    EventList,
    ReplayRequest,
    ReplayResponse,
    UpdateWebhookEndpointRequest,
    WebhookDeliveryList,
    WebhookEndpoint,
    WebhookEndpointList,
    WebhookEndpointWithSecret,
)
from drawdown.ledger.outbox import EventType
from drawdown.ledger.shapes import timestamp
from drawdown.services import balance_alerts
from drawdown.services import webhooks as service
from drawdown.services.delivery import event_body

routes = router()

ENDPOINTS = "Webhooks"
ALERTS = "Balance alerts"
EndpointId = Annotated[Identifier, Path(description="Identifier of the webhook endpoint")]


def endpoint(row: Row[Any], secret: str | None = None) -> dict[str, Any]:
    out = {
        "id": row.id,
        "url": row.url,
        "eventTypes": [kind for kind in (row.event_types or "").split(",") if kind],
        "description": row.description,
        "status": row.status,
        "disabledReason": row.disabled_reason,
        "createdAt": timestamp(row.created_at),
        "updatedAt": timestamp(row.updated_at),
    }
    if secret is not None:
        out["secret"] = secret
    return out


def _event(row: Row[Any]) -> msgspec.Raw:
    return msgspec.Raw(event_body(row.id, row.type, row.occurred_at, row.actor, row.data))


@routes.post(
    "/webhook_endpoints",
    operation_id="createWebhookEndpoint",
    responses=errors(*WRITE, 409),
    summary="Register a webhook endpoint; its secret is shown now and on rotation only",
    status_code=201,
    response_model=WebhookEndpointWithSecret,
    tags=[ENDPOINTS],
)
async def create_endpoint(
    body: CreateWebhookEndpointRequest,
    principal: Writer,
    ctx: RequestContext,
) -> Any:
    row, secret = await service.create(
        ctx.db,
        principal.org_seq,
        body.url,
        body.eventTypes,
        body.description,
        ctx.webhooks,
        ctx.now,
    )
    return JSONResponse(endpoint(row, secret), 201)


@routes.get(
    "/webhook_endpoints",
    operation_id="listWebhookEndpoints",
    responses=errors(*READ),
    summary="List webhook endpoints",
    response_model=WebhookEndpointList,
    tags=[ENDPOINTS],
)
async def list_endpoints(
    principal: Reader,
    ctx: RequestContext,
    next_token: NextToken = None,
    page_size: PageSize = 50,
) -> Any:
    found = await service.page(ctx.db, principal.org_seq, next_token, page_size)
    body: dict[str, Any] = {"data": [endpoint(row) for row in found.rows]}
    if found.next_token:
        body["nextToken"] = found.next_token
    return JSONResponse(body)


@routes.get(
    "/webhook_endpoints/{endpoint_id}",
    operation_id="getWebhookEndpoint",
    responses=errors(*READ, 404),
    summary="Get a webhook endpoint",
    response_model=WebhookEndpoint,
    tags=[ENDPOINTS],
)
async def get_endpoint(
    endpoint_id: EndpointId,
    principal: Reader,
    ctx: RequestContext,
) -> Any:
    return JSONResponse(endpoint(await service.get(ctx.db, principal.org_seq, endpoint_id)))


@routes.patch(
    "/webhook_endpoints/{endpoint_id}",
    operation_id="updateWebhookEndpoint",
    responses=errors(*WRITE, 404),
    summary="Change a webhook endpoint's URL, event types, description or status",
    response_model=WebhookEndpoint,
    tags=[ENDPOINTS],
)
async def update_endpoint(
    endpoint_id: EndpointId,
    body: UpdateWebhookEndpointRequest,
    principal: Writer,
    ctx: RequestContext,
) -> Any:
    changes = body.model_dump(exclude_unset=True)
    row = await service.update(
        ctx.db, principal.org_seq, endpoint_id, changes, ctx.webhooks, ctx.now
    )
    return JSONResponse(endpoint(row))


@routes.delete(
    "/webhook_endpoints/{endpoint_id}",
    operation_id="deleteWebhookEndpoint",
    responses=errors(*WRITE, 404),
    summary="Remove a webhook endpoint and its delivery log (the events stay)",
    status_code=204,
    response_class=Response,
    tags=[ENDPOINTS],
)
async def delete_endpoint(
    endpoint_id: EndpointId,
    principal: Writer,
    ctx: RequestContext,
) -> Response:
    await service.delete(ctx.db, principal.org_seq, endpoint_id)
    return Response(status_code=204)


@routes.post(
    "/webhook_endpoints/{endpoint_id}/rotate_secret",
    operation_id="rotateWebhookSecret",
    responses=errors(*WRITE, 404),
    summary="A new signing secret; the old one also signs for 24 hours",
    response_model=WebhookEndpointWithSecret,
    tags=[ENDPOINTS],
)
async def rotate_secret(
    endpoint_id: EndpointId,
    principal: Writer,
    ctx: RequestContext,
) -> Any:
    row, secret = await service.rotate(ctx.db, principal.org_seq, endpoint_id, ctx.now)
    return JSONResponse(endpoint(row, secret))


@routes.get(
    "/webhook_endpoints/{endpoint_id}/deliveries",
    operation_id="listWebhookDeliveries",
    responses=errors(*READ, 404),
    summary="The endpoint's deliveries, newest first, with every attempt",
    response_model=WebhookDeliveryList,
    tags=[ENDPOINTS],
)
async def list_deliveries(
    endpoint_id: EndpointId,
    principal: Reader,
    ctx: RequestContext,
    next_token: NextToken = None,
    page_size: PageSize = 50,
) -> Any:
    found, attempts = await service.deliveries(
        ctx.db, principal.org_seq, endpoint_id, next_token, page_size
    )
    data = [
        {
            "id": f"dlv.{row.seq}",
            "eventId": row.event_id,
            "eventType": row.type,
            "status": row.status,
            "attempts": [
                {
                    "at": timestamp(attempt.attempted_at),
                    "statusCode": attempt.status_code,
                    "durationMs": attempt.duration_ms,
                    "error": attempt.error,
                }
                for attempt in attempts.get(row.seq, [])
            ],
            "nextAttemptAt": (
                timestamp(row.next_attempt_at)
                if row.status == "PENDING" and row.next_attempt_at
                else None
            ),
            "createdAt": timestamp(row.created_at),
        }
        for row in found.rows
    ]
    body: dict[str, Any] = {"data": data}
    if found.next_token:
        body["nextToken"] = found.next_token
    return JSONResponse(body)


@routes.post(
    "/webhook_endpoints/{endpoint_id}/replay",
    operation_id="replayWebhookEvents",
    responses=errors(*WRITE, 404, 409),
    summary="Deliver again every event since a time that the endpoint takes",
    response_model=ReplayResponse,
    tags=[ENDPOINTS],
)
async def replay(
    endpoint_id: EndpointId,
    body: ReplayRequest,
    principal: Writer,
    ctx: RequestContext,
) -> Any:
    replayed, following = await service.replay(ctx.db, principal.org_seq, endpoint_id, body.since)
    ctx.wake_delivery()
    return JSONResponse({"replayed": replayed, "next": timestamp(following) if following else None})


@routes.get(
    "/events",
    operation_id="listEvents",
    responses=errors(*READ, 404),
    summary="The organization's events, oldest first, for callers that poll",
    response_model=EventList,
    tags=[ENDPOINTS],
)
async def list_events(
    principal: Reader,
    ctx: RequestContext,
    event_type: Annotated[EventType | None, Query(alias="type")] = None,
    after: Annotated[str | None, Query(max_length=50, description="The last event id seen")] = (
        None
    ),
    page_size: PageSize = 50,
) -> Any:
    found = await service.events(ctx.db, principal.org_seq, event_type, after, page_size)
    return JSONResponse({"data": [_event(row) for row in found.rows]})


def _organization_alerts(found: balance_alerts.OrganizationAlerts) -> dict[str, Any]:
    return {
        "thresholds": [money(t) for t in found.thresholds],
        "walletThresholds": [money(t) for t in found.wallet_thresholds],
        "expiringSoonDays": found.expiring_soon_days,
    }


def _account_alerts(found: balance_alerts.AccountAlerts) -> dict[str, Any]:
    return {
        "accountId": found.account_id,
        "thresholds": [money(t) for t in found.thresholds],
        "walletThresholds": [money(t) for t in found.wallet_thresholds],
        "source": {
            "thresholds": "ACCOUNT" if found.own_thresholds else "ORGANIZATION",
            "walletThresholds": "ACCOUNT" if found.own_wallet_thresholds else "ORGANIZATION",
        },
        "fired": [money(t) for t in found.fired],
        "walletFired": [money(t) for t in found.wallet_fired],
    }


@routes.put(
    "/balance_alerts",
    operation_id="putBalanceAlerts",
    responses=errors(*WRITE),
    summary="The organization's default thresholds and its expiring-soon days",
    response_model=BalanceAlerts,
    tags=[ALERTS],
)
async def put_organization_alerts(
    body: BalanceAlertsRequest,
    principal: Writer,
    ctx: RequestContext,
) -> Any:
    found = await balance_alerts.put_organization(
        ctx.db, principal.org_seq, body.model_dump(exclude_none=True), ctx.now
    )
    return JSONResponse(_organization_alerts(found))


@routes.get(
    "/balance_alerts",
    operation_id="getBalanceAlerts",
    responses=errors(*READ),
    summary="The organization's default thresholds and its expiring-soon days",
    response_model=BalanceAlerts,
    tags=[ALERTS],
)
async def get_organization_alerts(
    principal: Reader,
    ctx: RequestContext,
) -> Any:
    found = await balance_alerts.get_organization(ctx.db, principal.org_seq)
    return JSONResponse(_organization_alerts(found))


@routes.put(
    "/accounts/{account_id}/balance_alerts",
    operation_id="putAccountBalanceAlerts",
    responses=errors(*WRITE, 404),
    summary="The account's own thresholds (null: the organization's)",
    response_model=AccountBalanceAlerts,
    tags=[ALERTS],
)
async def put_account_alerts(
    account_id: AccountId,
    body: AccountBalanceAlertsRequest,
    principal: Writer,
    ctx: RequestContext,
) -> Any:
    found = await balance_alerts.put_account(
        ctx.db, principal.org_seq, account_id, body.model_dump(), ctx.now
    )
    return JSONResponse(_account_alerts(found))


@routes.get(
    "/accounts/{account_id}/balance_alerts",
    operation_id="getAccountBalanceAlerts",
    responses=errors(*READ, 404),
    summary="The account's thresholds in force, where they come from, and which have fired",
    response_model=AccountBalanceAlerts,
    tags=[ALERTS],
)
async def get_account_alerts(
    account_id: AccountId,
    principal: Reader,
    ctx: RequestContext,
) -> Any:
    found = await balance_alerts.get_account(ctx.db, principal.org_seq, account_id)
    return JSONResponse(_account_alerts(found))
