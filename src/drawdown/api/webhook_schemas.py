"""Webhook endpoints, their deliveries, events and balance alerts (docs/webhooks.md): request
bodies and response shapes, for validation and the document."""

from typing import Annotated, Literal

from pydantic import Field, StrictInt, StrictStr

from drawdown.api.fields import PositiveAmount
from drawdown.api.schemas import Body, Number, Out
from drawdown.api.usage_schemas import Time
from drawdown.ledger.outbox import EventType

Url = Annotated[StrictStr, Field(min_length=1, max_length=2000)]
Description = Annotated[StrictStr, Field(max_length=500)]
EndpointStatus = Literal["ENABLED", "DISABLED"]
Thresholds = Annotated[list[PositiveAmount], Field(max_length=10)]


class CreateWebhookEndpointRequest(Body):
    url: Url = Field(description="https:// (http:// only when the server allows it)")
    eventTypes: list[EventType] | None = Field(
        default=None, description="The types to send; none or [] for every type"
    )
    description: Description | None = None


class UpdateWebhookEndpointRequest(Body):
    url: Url | None = None
    eventTypes: list[EventType] | None = None
    description: Description | None = None
    status: EndpointStatus | None = None


class WebhookEndpoint(Out):
    id: str
    url: str
    eventTypes: list[str]
    description: str | None
    status: EndpointStatus
    disabledReason: str | None
    createdAt: str
    updatedAt: str


class WebhookEndpointWithSecret(WebhookEndpoint):
    secret: str = Field(description="whsec_...: shown on create and rotate only")


class WebhookEndpointList(Out):
    data: list[WebhookEndpoint]
    nextToken: str | None = None


class DeliveryAttempt(Out):
    at: str
    statusCode: int | None
    durationMs: int
    error: str | None


class WebhookDelivery(Out):
    id: str
    eventId: str
    eventType: str
    status: Literal["PENDING", "SUCCEEDED", "FAILED"]
    attempts: list[DeliveryAttempt]
    nextAttemptAt: str | None
    createdAt: str


class WebhookDeliveryList(Out):
    data: list[WebhookDelivery]
    nextToken: str | None = None


class ReplayRequest(Body):
    since: Time


class ReplayResponse(Out):
    replayed: int
    next: str | None


class Event(Out):
    id: str
    type: str
    timestamp: str
    actor: str
    data: dict[str, object]


class EventList(Out):
    data: list[Event]
    nextToken: str | None = None


class AccountBalanceAlertsRequest(Body):
    thresholds: Thresholds | None = Field(
        default=None, description="null or absent: the organization's"
    )
    walletThresholds: Thresholds | None = None


class AlertSources(Out):
    thresholds: Literal["ACCOUNT", "ORGANIZATION"]
    walletThresholds: Literal["ACCOUNT", "ORGANIZATION"]


class AccountBalanceAlerts(Out):
    accountId: str
    thresholds: list[Number]
    walletThresholds: list[Number]
    source: AlertSources
    fired: list[Number] = Field(description="Thresholds that fired and are not armed again")
    walletFired: list[Number] = Field(description="The same, of the wallet's thresholds")


class BalanceAlertsRequest(Body):
    thresholds: Thresholds | None = None
    walletThresholds: Thresholds | None = None
    expiringSoonDays: Annotated[StrictInt, Field(ge=1, le=365)] | None = None


class BalanceAlerts(Out):
    thresholds: list[Number]
    walletThresholds: list[Number]
    expiringSoonDays: int
