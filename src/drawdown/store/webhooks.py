"""Queries for webhook endpoints, their delivery log, replays and the events list (both
engines, through SQLAlchemy)."""

from datetime import datetime
from typing import Any

from sqlalchemy import (
    Boolean,
    ColumnElement,
    Row,
    and_,
    delete,
    func,
    literal_column,
    select,
    update,
)
from sqlalchemy.ext.asyncio import AsyncConnection

from drawdown.store.outbox_retention import take_turns_on_events
from drawdown.store.tables import events, webhook_attempts, webhook_deliveries, webhook_endpoints

# On PostgreSQL an event is listed only once every transaction of this database that was
# running when it committed has ended: one of them could still commit an event with an earlier
# position, which a caller paging with `after` would then skip. (Older than the oldest
# transaction still writing here; sequence positions are drawn after a transaction's first
# write, so nothing running can take one below an event older than itself.)
_SETTLED: ColumnElement[bool] = literal_column(
    "age(events.xmin) > coalesce((SELECT max(age(a.backend_xid)) FROM pg_stat_activity a"
    " WHERE a.datname = current_database() AND a.backend_xid IS NOT NULL), -1)",
    Boolean,
)


async def count_endpoints(conn: AsyncConnection, org_seq: int) -> int:
    query = select(func.count()).where(webhook_endpoints.c.org_seq == org_seq)
    return int((await conn.execute(query)).scalar_one())


async def insert_endpoint(conn: AsyncConnection, values: dict[str, Any]) -> None:
    await conn.execute(webhook_endpoints.insert().values(**values))


async def find_endpoint(conn: AsyncConnection, org_seq: int, endpoint_id: str) -> Row[Any] | None:
    query = select(webhook_endpoints).where(
        webhook_endpoints.c.org_seq == org_seq, webhook_endpoints.c.id == endpoint_id
    )
    return (await conn.execute(query)).first()


async def page_of_endpoints(
    conn: AsyncConnection, org_seq: int, after_seq: int, limit: int
) -> list[Row[Any]]:
    query = (
        select(webhook_endpoints)
        .where(webhook_endpoints.c.org_seq == org_seq, webhook_endpoints.c.seq > after_seq)
        .order_by(webhook_endpoints.c.seq)
        .limit(limit)
    )
    return list((await conn.execute(query)).all())


async def update_endpoint(conn: AsyncConnection, seq: int, values: dict[str, Any]) -> None:
    await conn.execute(
        update(webhook_endpoints).where(webhook_endpoints.c.seq == seq).values(**values)
    )


async def delete_endpoint(conn: AsyncConnection, seq: int) -> None:
    """The endpoint and its delivery log; the events stay."""
    mine = select(webhook_deliveries.c.seq).where(webhook_deliveries.c.endpoint_seq == seq)
    await conn.execute(delete(webhook_attempts).where(webhook_attempts.c.delivery_seq.in_(mine)))
    await conn.execute(delete(webhook_deliveries).where(webhook_deliveries.c.endpoint_seq == seq))
    await conn.execute(delete(webhook_endpoints).where(webhook_endpoints.c.seq == seq))


async def page_of_deliveries(
    conn: AsyncConnection, endpoint_seq: int, before_seq: int | None, limit: int
) -> tuple[list[Row[Any]], dict[int, list[Row[Any]]]]:
    """Deliveries newest first, with their events' ids and types, and each one's attempts."""
    d = webhook_deliveries.c
    conditions = [d.endpoint_seq == endpoint_seq]
    if before_seq is not None:
        conditions.append(d.seq < before_seq)
    query = (
        select(webhook_deliveries, events.c.id.label("event_id"), events.c.type.label("type"))
        .join(events, events.c.seq == d.event_seq)
        .where(*conditions)
        .order_by(d.seq.desc())
        .limit(limit)
    )
    rows = list((await conn.execute(query)).all())
    attempts: dict[int, list[Row[Any]]] = {}
    if rows:
        found = await conn.execute(
            select(webhook_attempts)
            .where(webhook_attempts.c.delivery_seq.in_([row.seq for row in rows]))
            .order_by(webhook_attempts.c.seq)
        )
        for attempt in found:
            attempts.setdefault(attempt.delivery_seq, []).append(attempt)
    return rows, attempts


async def replay(
    conn: AsyncConnection, endpoint: Row[Any], since: datetime, limit: int, now: datetime
) -> tuple[int, datetime | None]:
    """New deliveries of the organization's events since `since` that the endpoint takes,
    oldest first, `limit` (and the rest of the last one's instant); how many, and where the
    next call should start."""
    await take_turns_on_events(conn, endpoint.org_seq)
    conditions = [events.c.org_seq == endpoint.org_seq, events.c.occurred_at >= since]
    if endpoint.event_types is not None:
        types = [kind for kind in endpoint.event_types.split(",") if kind]
        conditions.append(events.c.type.in_(types))
    wanted = (
        select(events.c.seq, events.c.occurred_at)
        .where(*conditions)
        .order_by(events.c.occurred_at, events.c.seq)
        .limit(limit + 1)
    )
    rows = list((await conn.execute(wanted)).all())
    chosen, following = rows, None
    if len(rows) > limit:
        # `next` is a time, so a page must end between two times: the events of its last time
        # all go in it, even past the limit; the next call then neither repeats nor skips one
        last = rows[limit - 1]
        same_time = (
            select(events.c.seq, events.c.occurred_at)
            .where(*conditions, events.c.occurred_at == last.occurred_at, events.c.seq > last.seq)
            .order_by(events.c.seq)
        )
        chosen = rows[:limit] + list((await conn.execute(same_time)).all())
        later = select(func.min(events.c.occurred_at)).where(
            *conditions, events.c.occurred_at > last.occurred_at
        )
        following = (await conn.execute(later)).scalar()
    if chosen:
        await conn.execute(
            webhook_deliveries.insert(),
            [
                {
                    "endpoint_seq": endpoint.seq,
                    "event_seq": row.seq,
                    "status": "PENDING",
                    "attempts": 0,
                    "next_attempt_at": now,
                    "created_at": now,
                }
                for row in chosen
            ],
        )
    return len(chosen), following


async def find_event_seq(conn: AsyncConnection, org_seq: int, event_id: str) -> int | None:
    query = select(events.c.seq).where(events.c.org_seq == org_seq, events.c.id == event_id)
    return (await conn.execute(query)).scalar()


async def page_of_events(
    conn: AsyncConnection, org_seq: int, kind: str | None, after_seq: int, limit: int
) -> list[Row[Any]]:
    conditions = [events.c.org_seq == org_seq, events.c.seq > after_seq]
    if kind is not None:
        conditions.append(events.c.type == kind)
    if conn.dialect.name == "postgresql":
        conditions.append(_SETTLED)
    query = select(events).where(and_(*conditions)).order_by(events.c.seq).limit(limit)
    return list((await conn.execute(query)).all())
