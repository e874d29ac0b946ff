"""Usage request bodies and response shapes (docs/usage.md), for validation and the document;
the events' shapes follow togai-client's Event, Attribute, IngestEventRequest,
IngestBatchEventRequest and IngestEventResponse."""

from datetime import datetime
from typing import Annotated, Literal

from pydantic import BeforeValidator, ConfigDict, Field, StrictStr, WithJsonSchema
from pydantic.config import JsonDict

from drawdown.api.fields import NonNegativeAmount, PositiveAmount, Text
from drawdown.api.schemas import Body, Number, Out
from drawdown.ledger.events import Refused, parse_timestamp

MeterIdentifier = Annotated[
    StrictStr, Field(min_length=1, max_length=50, pattern=r"^[A-Za-z0-9._-]+$")
]
ShortText = Annotated[StrictStr, Field(min_length=1, max_length=50, pattern=r"^[^\x00]+$")]
Label = Annotated[StrictStr, Field(min_length=1, max_length=200, pattern=r"^[^\x00]+$")]
# a dimension named in a filter: "dimensions.<name>"
FilterField = Annotated[
    StrictStr, Field(min_length=12, max_length=211, pattern=r"^dimensions\.[^\x00]{1,200}$")
]


def _time(value: object) -> datetime:
    if not isinstance(value, str):
        raise ValueError("must be an ISO 8601 time written as a string")
    try:
        return parse_timestamp(value)
    except Refused as refused:
        raise ValueError(str(refused).removeprefix("timestamp: ")) from None


# ISO 8601 with an offset (none: UTC), at most microseconds
Time = Annotated[
    datetime, BeforeValidator(_time), WithJsonSchema({"type": "string", "format": "date-time"})
]

Dimensions = Annotated[
    dict[Label, Label],
    WithJsonSchema(
        {
            "type": "object",
            "additionalProperties": {"type": "string", "minLength": 1, "maxLength": 200},
        }
    ),
]

# Events (Togai's) -----------------------------------------------------------------------------


class Attribute(Body):
    name: ShortText
    value: StrictStr = Field(description='A non-negative decimal written as digits: "1520"')
    unit: ShortText | None = None


class Event(Body):
    schemaName: ShortText
    id: Annotated[StrictStr, Field(max_length=512)] | None = Field(
        default=None,
        description="Required: the event's identity within the organization for 45 days",
    )
    timestamp: Time
    accountId: Annotated[StrictStr, Field(min_length=1, max_length=512)]
    attributes: list[Attribute] = Field(default_factory=list, max_length=10)
    dimensions: Dimensions = Field(default_factory=dict)


_EVENT_EXAMPLE: JsonDict = {
    "schemaName": "llm_call",
    "id": "evt-123",
    "timestamp": "2026-11-25T10:00:00Z",
    "accountId": "acme-main",
    "attributes": [{"name": "tokens", "value": "1520", "unit": "tokens"}],
    "dimensions": {"model": "large", "region": "eu"},
}


class IngestEventRequest(Body):
    model_config = ConfigDict(json_schema_extra={"examples": [{"event": _EVENT_EXAMPLE}]})

    event: Event


class IngestBatchEventRequest(Body):
    model_config = ConfigDict(json_schema_extra={"examples": [{"events": [_EVENT_EXAMPLE]}]})

    events: list[Event] = Field(min_length=1, max_length=1000)


class RefusedEvent(Out):
    index: int
    id: str | None
    reason: str


class IngestDetails(Out):
    accepted: int
    duplicates: int
    refused: list[RefusedEvent] | None = None


class IngestEventResponse(Out):
    success: bool
    statusCode: int
    message: str = Field(max_length=500)
    details: IngestDetails


# Meters (drawdown's own, named after Togai's usage meters) ------------------------------------


class Filter(Body):
    field: FilterField
    value: Label


class CreditRate(Body):
    credits: NonNegativeAmount
    perQuantity: PositiveAmount


class CreateUsageMeterRequest(Body):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "id": "um.tokens",
                    "name": "LLM tokens",
                    "eventSchemaName": "llm_call",
                    "aggregation": "SUM",
                    "attribute": "tokens",
                    "filters": [{"field": "dimensions.model", "value": "large"}],
                    "creditRate": {"credits": 0.002, "perQuantity": 1000},
                }
            ]
        }
    )

    id: MeterIdentifier
    name: Text
    eventSchemaName: ShortText
    aggregation: Literal["SUM", "COUNT"]
    attribute: ShortText | None = None
    filters: list[Filter] = Field(default_factory=list, max_length=20)
    creditRate: CreditRate
    effectiveFrom: Time | None = None


class UpdateUsageMeterRequest(Body):
    creditRate: CreditRate
    effectiveFrom: Time


class CreditRateOut(Out):
    credits: Number
    perQuantity: Number


class RateOut(Out):
    credits: Number
    perQuantity: Number
    effectiveFrom: datetime | None


class FilterOut(Out):
    field: str
    value: str


class UsageMeter(Out):
    id: str
    name: str
    eventSchemaName: str
    aggregation: Literal["SUM", "COUNT"]
    attribute: str | None
    filters: list[FilterOut]
    status: Literal["ACTIVE", "INACTIVE"]
    creditRate: CreditRateOut
    rates: list[RateOut]
    createdAt: datetime
    updatedAt: datetime


class UsageMeterList(Out):
    data: list[UsageMeter] = Field(max_length=50)
    nextToken: str | None = Field(default=None, max_length=500)


# Reads -----------------------------------------------------------------------------------------


class MeterUsage(Out):
    meterId: str
    quantity: Number
    cost: Number
    paidByCredits: Number
    paidByWallet: Number
    uncovered: Number
    events: int


class AccountUsage(Out):
    accountId: str
    appliedThrough: datetime | None
    pending: int
    meters: list[MeterUsage]


class UsageAllocation(Out):
    creditId: str
    amount: Number


class EventCharge(Out):
    meterId: str
    quantity: Number
    rate: CreditRateOut
    exactCost: Number | None = None
    cost: Number
    allocations: list[UsageAllocation]
    uncovered: Number


class UsageEvent(Out):
    id: str
    accountId: str
    timestamp: datetime
    status: Literal["PENDING", "APPLIED", "UNMETERED"]
    meters: list[EventCharge]


class UsageEventList(Out):
    data: list[UsageEvent] = Field(max_length=50)
    nextToken: str | None = Field(default=None, max_length=1500)


# an event's id in a path: what ingestion accepts (1 to 512 visible characters without "/")
EventIdentifier = Annotated[
    StrictStr, Field(min_length=1, max_length=512, pattern=r"^[^\s/\x00-\x1f\x7f-\x9f]+$")
]
