"""Usage meters (create, list, re-rate, activate, deactivate) and the usage reads
(docs/usage.md, "Meters" and "Reads")."""

import base64
import binascii
import json
from dataclasses import dataclass, replace
from datetime import datetime

from sqlalchemy.ext.asyncio import AsyncConnection

from drawdown.errors import BadRequest, Conflict, NotFound
from drawdown.ledger.records import AccountRecord
from drawdown.ledger.usage import (
    Aggregation,
    Meter,
    MeterStatus,
    Rate,
    check_definition,
    with_rate,
)
from drawdown.ledger.usage_records import UsageSums
from drawdown.services.paging import decode_token, encode_token
from drawdown.store import ledger, meters, usage
from drawdown.store.database import Database
from drawdown.store.usage import StoredEvent

_BAD_TOKEN = "nextToken is not a token this service issued; pass it back unchanged"


@dataclass(frozen=True)
class MeterDefinition:
    id: str
    name: str
    event_schema_name: str
    aggregation: Aggregation
    attribute: str | None
    filters: tuple[tuple[str, str], ...]
    rate: Rate


@dataclass(frozen=True)
class AccountUsage:
    account_id: str
    applied_through: datetime | None
    pending: int
    meters: list[tuple[str, UsageSums]]


@dataclass(frozen=True)
class EventPage:
    events: list[StoredEvent]
    next_token: str | None


def _not_found(meter_id: str) -> NotFound:
    return NotFound(f"usage meter '{meter_id}' was not found")


async def create_meter(db: Database, org_seq: int, given: MeterDefinition, now: datetime) -> Meter:
    check_definition(given.aggregation, given.attribute, given.filters)
    meter = Meter(
        seq=0,
        org_seq=org_seq,
        id=given.id,
        name=given.name,
        event_schema_name=given.event_schema_name,
        aggregation=given.aggregation,
        attribute=given.attribute,
        filters=given.filters,
        status=MeterStatus.ACTIVE,
        rates=(given.rate,),
        created_at=now,
        updated_at=now,
    )

    async def work(conn: AsyncConnection) -> Meter:
        if await meters.find(conn, org_seq, given.id) is not None:
            raise Conflict(f"usage meter '{given.id}' already exists")
        await meters.insert(conn, meter)
        found = await meters.find(conn, org_seq, given.id)
        assert found is not None
        return found

    return await db.transact(work)


async def get_meter(db: Database, org_seq: int, meter_id: str) -> Meter:
    async with db.read() as conn:
        found = await meters.find(conn, org_seq, meter_id)
    if found is None:
        raise _not_found(meter_id)
    return found


async def list_meters(
    db: Database, org_seq: int, *, page_size: int, next_token: str | None
) -> tuple[list[Meter], str | None]:
    after = decode_token("usage_meters", next_token)
    async with db.read() as conn:
        found = await meters.page(conn, org_seq, after_seq=after, limit=page_size + 1)
    more = len(found) > page_size
    found = found[:page_size]
    return found, encode_token("usage_meters", found[-1].seq) if more else None


async def add_rate(db: Database, org_seq: int, meter_id: str, rate: Rate, now: datetime) -> Meter:
    async def work(conn: AsyncConnection) -> Meter:
        meter = await meters.find(conn, org_seq, meter_id, lock=True)
        if meter is None:
            raise _not_found(meter_id)
        changed = with_rate(meter, rate, now)
        await meters.add_rate(conn, meter.seq, rate, now)
        return changed

    return await db.transact(work)


async def set_status(
    db: Database, org_seq: int, meter_id: str, status: MeterStatus, now: datetime
) -> Meter:
    async def work(conn: AsyncConnection) -> Meter:
        meter = await meters.find(conn, org_seq, meter_id, lock=True)
        if meter is None:
            raise _not_found(meter_id)
        if meter.status is status:
            return meter
        await meters.touch(conn, meter.seq, now, status)
        return replace(meter, status=status, updated_at=now)

    return await db.transact(work)


async def _account(conn: AsyncConnection, org_seq: int, account_id: str) -> AccountRecord:
    account = await ledger.find_account(conn, org_seq, account_id)
    if account is None:
        raise NotFound(f"account '{account_id}' was not found")
    return account


def _check_range(since: datetime | None, until: datetime | None) -> None:
    if since is not None and until is not None and since > until:
        raise BadRequest("from: must not be later than to")


async def account_usage(
    db: Database,
    org_seq: int,
    account_id: str,
    since: datetime | None = None,
    until: datetime | None = None,
) -> AccountUsage:
    _check_range(since, until)
    async with db.read() as conn:
        account = await _account(conn, org_seq, account_id)
        pending, earliest = await usage.pending(conn, account.seq, since, until)
        if since is None and until is None:
            totals = await usage.totals(conn, account.seq)
        else:
            totals = _sums(await usage.applied_in_range(conn, account.seq, since, until))
        kept = account.usage_applied_through
        if earliest is None or (kept is not None and kept < earliest):
            through = kept
        else:
            through = await usage.latest_applied_before(conn, account.seq, earliest)
    return AccountUsage(account.id, through, pending, totals)


def _sums(events: list[StoredEvent]) -> list[tuple[str, UsageSums]]:
    found: dict[str, UsageSums] = {}
    for event in events:
        for charge in event.charges:
            found[charge.meter_id] = found.get(charge.meter_id, UsageSums()) + UsageSums.of(charge)
    return sorted(found.items(), key=lambda item: item[0].encode())


def _event_token(event: StoredEvent) -> str:
    position = json.dumps(["usage-events", event.timestamp.isoformat(), event.id])
    return base64.urlsafe_b64encode(position.encode()).decode()


def _event_position(token: str | None) -> tuple[datetime, str] | None:
    if not token:
        return None
    try:
        kind, at, event_id = json.loads(base64.urlsafe_b64decode(token.encode()).decode())
        if kind == "usage-events" and isinstance(event_id, str) and isinstance(at, str):
            return datetime.fromisoformat(at), event_id
    except (binascii.Error, UnicodeDecodeError, ValueError, TypeError):
        pass
    raise BadRequest(_BAD_TOKEN)


async def account_events(
    db: Database,
    org_seq: int,
    account_id: str,
    *,
    meter_id: str | None,
    since: datetime | None,
    until: datetime | None,
    page_size: int,
    next_token: str | None,
) -> EventPage:
    _check_range(since, until)
    before = _event_position(next_token)
    async with db.read() as conn:
        account = await _account(conn, org_seq, account_id)
        found = await usage.page_of_events(
            conn,
            account.seq,
            before=before,
            limit=page_size + 1,
            meter_id=meter_id,
            since=since,
            until=until,
        )
    more = len(found) > page_size
    found = found[:page_size]
    return EventPage(found, _event_token(found[-1]) if more else None)


async def event(db: Database, org_seq: int, event_id: str) -> StoredEvent:
    async with db.read() as conn:
        found = await usage.find_event(conn, org_seq, event_id)
    if found is None:
        raise NotFound(f"usage event '{event_id}' was not found")
    return found
