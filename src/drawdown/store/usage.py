"""Read queries for usage (both engines, through SQLAlchemy): accounts with pending events,
an account's running totals, its events, one event."""

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, and_, func, or_, select, text
from sqlalchemy.ext.asyncio import AsyncConnection

from drawdown.ledger.usage import EventStatus
from drawdown.ledger.usage_records import Charge, UsageSums
from drawdown.store.column_types import UtcDateTime
from drawdown.store.tables import accounts, usage_events, usage_meters, usage_totals

# The accounts with pending events, one index probe each (a loose scan of the partial index of
# pending events), so finding work costs the number of accounts, not of events.
_PENDING_ACCOUNTS = """
WITH RECURSIVE pending(seq) AS (
    SELECT (SELECT min(account_seq) FROM usage_events WHERE status = 'PENDING')
    UNION ALL
    SELECT (SELECT min(e.account_seq) FROM usage_events e
            WHERE e.status = 'PENDING' AND e.account_seq > p.seq)
    FROM pending p WHERE p.seq IS NOT NULL
)
SELECT a.seq, a.org_seq, a.id FROM pending p JOIN accounts a ON a.seq = p.seq
{received}
LIMIT :limit
"""
_RECEIVED_BEFORE = """
WHERE EXISTS (SELECT 1 FROM usage_events e
              WHERE e.account_seq = p.seq AND e.status = 'PENDING'
                AND e.received_at < :received_before)
"""
# an applier's share of the accounts (services/seating.py)
_IN_SHARE = "WHERE p.seq % :seats = :rank"
_ANY_PENDING = text(_PENDING_ACCOUNTS.format(received=""))
_OLD_PENDING = text(_PENDING_ACCOUNTS.format(received=_RECEIVED_BEFORE))
_SHARE_PENDING = text(_PENDING_ACCOUNTS.format(received=_IN_SHARE))


@dataclass(frozen=True)
class StoredEvent:
    seq: int
    id: str
    account_id: str
    timestamp: datetime
    status: EventStatus
    charges: tuple[Charge, ...]


async def accounts_with_pending(
    conn: AsyncConnection,
    limit: int,
    received_before: datetime | None = None,
    share: tuple[int, int] | None = None,
) -> list[tuple[int, int, str]]:
    """(account seq, org seq, account id) of accounts with pending events; with
    `received_before`, only those with one received before then; with `share` (seats, rank),
    only those whose seq % seats is rank."""
    if share is not None:
        seats, rank = share
        rows = await conn.execute(_SHARE_PENDING, {"limit": limit, "seats": seats, "rank": rank})
    elif received_before is None:
        rows = await conn.execute(_ANY_PENDING, {"limit": limit})
    else:
        bound = UtcDateTime().process_bind_param(received_before, conn.dialect)
        rows = await conn.execute(_OLD_PENDING, {"limit": limit, "received_before": bound})
    return [(row.seq, row.org_seq, row.id) for row in rows]


async def totals(conn: AsyncConnection, account_seq: int) -> list[tuple[str, UsageSums]]:
    """The running totals of the account, per meter id (byte order)."""
    query = (
        select(usage_totals, usage_meters.c.id.label("meter_id"))
        .join(usage_meters, usage_meters.c.seq == usage_totals.c.meter_seq)
        .where(usage_totals.c.account_seq == account_seq)
        .order_by(usage_meters.c.id)
    )
    return [
        (
            row.meter_id,
            UsageSums(
                row.quantity,
                row.cost,
                row.paid_by_credits,
                row.paid_by_wallet,
                row.uncovered,
                row.events,
            ),
        )
        for row in await conn.execute(query)
    ]


def _in_range(query: Any, since: datetime | None, until: datetime | None) -> Any:
    if since is not None:
        query = query.where(usage_events.c.occurred_at >= since)
    if until is not None:
        query = query.where(usage_events.c.occurred_at < until)
    return query


async def pending(
    conn: AsyncConnection, account_seq: int, since: datetime | None, until: datetime | None
) -> tuple[int, datetime | None]:
    """How many of the account's events in range are pending, and the earliest timestamp of
    any pending one (in range or not), in one statement."""
    in_range: ColumnElement[bool] = usage_events.c.occurred_at.isnot(None)
    if since is not None:
        in_range = and_(in_range, usage_events.c.occurred_at >= since)
    if until is not None:
        in_range = and_(in_range, usage_events.c.occurred_at < until)
    query = select(func.count().filter(in_range), func.min(usage_events.c.occurred_at)).where(
        usage_events.c.account_seq == account_seq,
        usage_events.c.status == EventStatus.PENDING.value,
    )
    count, earliest = (await conn.execute(query)).one()
    return int(count), earliest


async def latest_applied_before(
    conn: AsyncConnection, account_seq: int, before: datetime
) -> datetime | None:
    """The latest timestamp of an applied (or unmetered) event earlier than `before`."""
    query = (
        select(usage_events.c.occurred_at)
        .where(
            usage_events.c.account_seq == account_seq,
            usage_events.c.occurred_at < before,
            usage_events.c.status != EventStatus.PENDING.value,
        )
        .order_by(usage_events.c.occurred_at.desc())
        .limit(1)
    )
    found: datetime | None = (await conn.execute(query)).scalar()
    return found


def _stored(row: Any) -> StoredEvent:
    return StoredEvent(
        seq=row.seq,
        id=row.id,
        account_id=row.account_id,
        timestamp=row.occurred_at,
        status=EventStatus(row.status),
        charges=tuple(Charge.from_stored(charge) for charge in row.results or []),
    )


def _events_query() -> Any:
    return select(
        usage_events.c.seq,
        usage_events.c.id,
        usage_events.c.occurred_at,
        usage_events.c.status,
        usage_events.c.results,
        accounts.c.id.label("account_id"),
    ).join(accounts, accounts.c.seq == usage_events.c.account_seq)


async def applied_in_range(
    conn: AsyncConnection, account_seq: int, since: datetime | None, until: datetime | None
) -> list[StoredEvent]:
    """The account's applied events in range (for totals over a range)."""
    query = _events_query().where(
        usage_events.c.account_seq == account_seq,
        usage_events.c.status == EventStatus.APPLIED.value,
    )
    return [_stored(row) for row in await conn.execute(_in_range(query, since, until))]


async def page_of_events(
    conn: AsyncConnection,
    account_seq: int,
    *,
    before: tuple[datetime, str] | None,
    limit: int,
    meter_id: str | None,
    since: datetime | None,
    until: datetime | None,
) -> list[StoredEvent]:
    """The account's events newest first (timestamp, then id, descending), after `before`."""
    query = _events_query().where(usage_events.c.account_seq == account_seq)
    if before is not None:
        at, event_id = before
        query = query.where(
            or_(
                usage_events.c.occurred_at < at,
                and_(usage_events.c.occurred_at == at, usage_events.c.id < event_id),
            )
        )
    if meter_id is not None:
        escaped = meter_id.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
        query = query.where(usage_events.c.meter_ids.like(f"%,{escaped},%", escape="\\"))
    query = _in_range(query, since, until)
    query = query.order_by(usage_events.c.occurred_at.desc(), usage_events.c.id.desc()).limit(limit)
    return [_stored(row) for row in await conn.execute(query)]


async def find_event(conn: AsyncConnection, org_seq: int, event_id: str) -> StoredEvent | None:
    query = _events_query().where(usage_events.c.org_seq == org_seq, usage_events.c.id == event_id)
    row = (await conn.execute(query)).first()
    return _stored(row) if row is not None else None
