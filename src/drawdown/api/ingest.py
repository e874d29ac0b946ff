"""Togai's event ingestion: POST /ingest and POST /ingestBatch (docs/usage.md), on the hot
path: bodies decoded with msgspec (api/event_bodies.py), events stored by the process's
coalesced ingestion (services/ingest.py), answered after the COMMIT."""

import json
from typing import Any

from fastapi import Response

from drawdown.api import event_bodies, render_usage
from drawdown.api.endpoints import Body, Call, Endpoint
from drawdown.api.jsonio import JSONResponse
from drawdown.api.routing import WRITE
from drawdown.api.usage_schemas import (
    IngestBatchEventRequest,
    IngestEventRequest,
    IngestEventResponse,
)
from drawdown.errors import BadRequest, Conflict, NotFound
from drawdown.ledger.events import NewEvent
from drawdown.services.ingest import Fate, Ingestion, ingest_batch

_REFUSED = {400: BadRequest, 404: NotFound, 409: Conflict}


def _ingestion(call: Call) -> Ingestion:
    ingestion: Ingestion = call.request.app.state.ingestion
    return ingestion


def _reparsed(model: Any) -> bytes:
    """A body the documented model accepted, as the JSON the fast path reads."""
    return json.dumps(model.model_dump(mode="json", exclude_unset=True)).encode()


def _single_from_documented(model: IngestEventRequest) -> NewEvent | event_bodies.BadEvent:
    found = event_bodies.single(_reparsed(model))
    assert found is not None, "the documented model accepted what the fast path cannot read"
    return found


def _batch_from_documented(model: IngestBatchEventRequest) -> event_bodies.Batch:
    found = event_bodies.batch(_reparsed(model))
    assert found is not None, "the documented model accepted what the fast path cannot read"
    return found


async def ingest_event(call: Call) -> Response:
    found: NewEvent | event_bodies.BadEvent = call.body
    if isinstance(found, event_bodies.BadEvent):
        raise BadRequest(f"event.{found.reason}")
    [outcome] = await ingest_batch(_ingestion(call), call.org_seq, [found])
    if outcome.fate is Fate.REFUSED:
        assert outcome.reason is not None
        raise _REFUSED[outcome.status](outcome.reason)
    status, body = render_usage.ingested([outcome], [found.id])
    return JSONResponse(body, status_code=status)


async def ingest_events(call: Call) -> Response:
    found: event_bodies.Batch = call.body
    items = [item if isinstance(item, NewEvent) else item.reason for item in found.items]
    outcomes = await ingest_batch(_ingestion(call), call.org_seq, items)
    status, body = render_usage.ingested(outcomes, [item.id for item in found.items])
    return JSONResponse(body, status_code=status)


ingest = Endpoint(
    "POST",
    "/ingest",
    operation_id="ingest",
    summary="Ingest one usage event",
    tag="Event Ingestion",
    response_model=IngestEventResponse,
    statuses=(*WRITE, 404, 409),
    handler=ingest_event,
    path_params={},
    body=Body(event_bodies.single, IngestEventRequest, _single_from_documented),
    writes=True,
    status_code=202,
)

ingest_batch_endpoint = Endpoint(
    "POST",
    "/ingestBatch",
    operation_id="ingestBatch",
    summary="Ingest up to 1,000 usage events",
    tag="Event Ingestion",
    response_model=IngestEventResponse,
    statuses=WRITE,
    handler=ingest_events,
    path_params={},
    body=Body(event_bodies.batch, IngestBatchEventRequest, _batch_from_documented),
    writes=True,
    status_code=202,
    also=(207,),
)

routes = [ingest, ingest_batch_endpoint]
