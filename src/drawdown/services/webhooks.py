"""Webhook endpoints (docs/webhooks.md, "Endpoints"): register, change, rotate, remove, read
the delivery log, replay, and list events. A URL is checked (and its host resolved) before any
transaction opens."""

import base64
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import Row
from sqlalchemy.ext.asyncio import AsyncConnection

from drawdown.errors import BadRequest, Conflict, NotFound
from drawdown.ledger.ids import new_id
from drawdown.ledger.outbox import EventType
from drawdown.services import url_rules
from drawdown.services.paging import decode_token, encode_token
from drawdown.services.webhook_settings import WebhookSettings
from drawdown.store import webhooks as store
from drawdown.store.database import Database
from drawdown.store.outbox import types_column

ENDPOINT_PREFIX = "whep"
SECRET_PREFIX = "whsec_"
MAX_ENDPOINTS = 20
# after a rotation the old secret signs too, so receivers switch over without losing one
ROTATION_GRACE = timedelta(hours=24)
MAX_REPLAY = 10_000


@dataclass(frozen=True)
class Page:
    rows: list[Any]
    next_token: str | None


def new_secret() -> str:
    return SECRET_PREFIX + base64.b64encode(secrets.token_bytes(24)).decode()


async def check_url(url: str, settings: WebhookSettings) -> None:
    try:
        await url_rules.check(url, settings)
    except url_rules.RefusedUrl as refused:
        raise BadRequest(f"url: {refused}") from None


def _types(event_types: list[EventType] | None) -> str | None:
    if event_types and len(set(event_types)) != len(event_types):
        raise BadRequest("eventTypes must not name a type twice")
    return types_column([t.value for t in event_types] if event_types else None)


async def _endpoint(conn: AsyncConnection, org_seq: int, endpoint_id: str) -> Row[Any]:
    found = await store.find_endpoint(conn, org_seq, endpoint_id)
    if found is None:
        raise NotFound(f"webhook endpoint '{endpoint_id}' was not found")
    return found


async def create(
    db: Database,
    org_seq: int,
    url: str,
    event_types: list[EventType] | None,
    description: str | None,
    settings: WebhookSettings,
    now: datetime,
) -> tuple[Row[Any], str]:
    types = _types(event_types)
    await check_url(url, settings)
    endpoint_id = new_id(ENDPOINT_PREFIX)
    secret = new_secret()

    async def work(conn: AsyncConnection) -> Row[Any]:
        if await store.count_endpoints(conn, org_seq) >= MAX_ENDPOINTS:
            raise Conflict(
                f"an organization may have at most {MAX_ENDPOINTS} webhook endpoints; "
                "delete one first"
            )
        await store.insert_endpoint(
            conn,
            {
                "org_seq": org_seq,
                "id": endpoint_id,
                "url": url,
                "event_types": types,
                "description": description,
                "secret": secret,
                "status": "ENABLED",
                "created_at": now,
                "updated_at": now,
            },
        )
        return await _endpoint(conn, org_seq, endpoint_id)

    return await db.transact(work), secret


async def get(db: Database, org_seq: int, endpoint_id: str) -> Row[Any]:
    async with db.read() as conn:
        return await _endpoint(conn, org_seq, endpoint_id)


async def page(db: Database, org_seq: int, token: str | None, page_size: int) -> Page:
    after = decode_token("webhook_endpoints", token)
    async with db.read() as conn:
        rows = await store.page_of_endpoints(conn, org_seq, after, page_size + 1)
    more = len(rows) > page_size
    following = encode_token("webhook_endpoints", rows[page_size - 1].seq) if more else None
    return Page(rows[:page_size], following)


async def update(
    db: Database,
    org_seq: int,
    endpoint_id: str,
    changes: dict[str, Any],
    settings: WebhookSettings,
    now: datetime,
) -> Row[Any]:
    """Only what `changes` names (fields of the PATCH body) changes."""
    values: dict[str, Any] = {}
    if "url" in changes:
        if changes["url"] is None:
            raise BadRequest("url: must not be null")
        await check_url(changes["url"], settings)
        values["url"] = changes["url"]
    if "eventTypes" in changes:
        values["event_types"] = _types(changes["eventTypes"])
    if "description" in changes:
        values["description"] = changes["description"]
    status = changes.get("status")
    if status == "ENABLED":
        values.update(status="ENABLED", disabled_reason=None, failing_since=None)
    elif status == "DISABLED":
        values.update(status="DISABLED", disabled_reason="disabled through the API")

    async def work(conn: AsyncConnection) -> Row[Any]:
        found = await _endpoint(conn, org_seq, endpoint_id)
        if values:
            if status == "DISABLED" and found.status == "DISABLED":
                values.pop("disabled_reason")  # keep why it was disabled
            await store.update_endpoint(conn, found.seq, {**values, "updated_at": now})
        return await _endpoint(conn, org_seq, endpoint_id)

    return await db.transact(work)


async def delete(db: Database, org_seq: int, endpoint_id: str) -> None:
    async def work(conn: AsyncConnection) -> None:
        found = await _endpoint(conn, org_seq, endpoint_id)
        await store.delete_endpoint(conn, found.seq)

    await db.transact(work)


async def rotate(
    db: Database, org_seq: int, endpoint_id: str, now: datetime
) -> tuple[Row[Any], str]:
    secret = new_secret()

    async def work(conn: AsyncConnection) -> Row[Any]:
        found = await _endpoint(conn, org_seq, endpoint_id)
        await store.update_endpoint(
            conn,
            found.seq,
            {
                "secret": secret,
                "previous_secret": found.secret,
                # by the wall clock, which delivery keeps
                "previous_secret_until": datetime.now(UTC) + ROTATION_GRACE,
                "updated_at": now,
            },
        )
        return await _endpoint(conn, org_seq, endpoint_id)

    return await db.transact(work), secret


async def deliveries(
    db: Database, org_seq: int, endpoint_id: str, token: str | None, page_size: int
) -> tuple[Page, dict[int, list[Any]]]:
    before = decode_token("webhook_deliveries", token) or None
    async with db.read() as conn:
        found = await _endpoint(conn, org_seq, endpoint_id)
        rows, attempts = await store.page_of_deliveries(conn, found.seq, before, page_size + 1)
    more = len(rows) > page_size
    following = encode_token("webhook_deliveries", rows[page_size - 1].seq) if more else None
    return Page(rows[:page_size], following), attempts


async def replay(
    db: Database, org_seq: int, endpoint_id: str, since: datetime, limit: int = MAX_REPLAY
) -> tuple[int, datetime | None]:
    now = datetime.now(UTC)  # due at once, by the wall clock delivery keeps

    async def work(conn: AsyncConnection) -> tuple[int, datetime | None]:
        found = await _endpoint(conn, org_seq, endpoint_id)
        if found.status != "ENABLED":
            raise Conflict(
                f"webhook endpoint '{endpoint_id}' is disabled; enable it first "
                '(PATCH {"status": "ENABLED"})'
            )
        return await store.replay(conn, found, since, limit, now)

    return await db.transact(work)


async def events(
    db: Database, org_seq: int, kind: EventType | None, after: str | None, page_size: int
) -> Page:
    async with db.read() as conn:
        after_seq = 0
        if after is not None:
            found = await store.find_event_seq(conn, org_seq, after)
            if found is None:
                raise NotFound(f"event '{after}' was not found (after must be an event's id)")
            after_seq = found
        rows = await store.page_of_events(
            conn, org_seq, kind.value if kind else None, after_seq, page_size
        )
    return Page(rows, None)
