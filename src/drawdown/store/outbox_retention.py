"""The outbox's clean-up (docs/webhooks.md, "Retention"), on both engines through SQLAlchemy:
finished deliveries (SUCCEEDED or FAILED) with their attempts, then events no delivery refers
to any more, each older than a cut-off, a batch per transaction. A PENDING delivery is never
deleted, however old (it waits for a retry, or for its endpoint to be enabled again), and
neither is its event."""

from datetime import datetime

from sqlalchemy import delete, exists, select, text
from sqlalchemy.ext.asyncio import AsyncConnection

from drawdown.store.seats import SEAT_CLASS
from drawdown.store.tables import events, webhook_attempts, webhook_deliveries
from drawdown.store.tables import organizations as organizations_table

FINISHED = ("SUCCEEDED", "FAILED")
# the two int4 keys of the lock below: (class, organization); store/seats.py has the classes
# before it
EVENTS_CLASS = SEAT_CLASS + 2
_TAKE_TURNS = text("SELECT pg_advisory_xact_lock(CAST(:class AS int), CAST(:org AS int))")


async def take_turns_on_events(conn: AsyncConnection, org_seq: int) -> None:
    """Until this transaction ends, a replay and a clean-up of the organization's events take
    turns. Otherwise a clean-up could delete an old event while a replay gave it a delivery,
    and the foreign key failed whichever came second (a replay's 500, or a clean-up stopped).
    PostgreSQL only: SQLite's write lock already makes every writer take turns."""
    if conn.dialect.name == "postgresql":
        await conn.execute(_TAKE_TURNS, {"class": EVENTS_CLASS, "org": org_seq})


async def purge_deliveries(conn: AsyncConnection, before: datetime, limit: int) -> int:
    """Up to `limit` deliveries finished before `before`, with their attempts; how many."""
    d = webhook_deliveries.c
    chosen = (
        select(d.seq)
        .where(d.finished_at < before, d.status.in_(FINISHED))
        .order_by(d.finished_at)
        .limit(limit)
    )
    seqs = list((await conn.execute(chosen)).scalars())
    if seqs:
        await conn.execute(
            delete(webhook_attempts).where(webhook_attempts.c.delivery_seq.in_(seqs))
        )
        await conn.execute(delete(webhook_deliveries).where(d.seq.in_(seqs)))
    return len(seqs)


async def organizations(conn: AsyncConnection) -> list[int]:
    return list((await conn.execute(select(organizations_table.c.seq))).scalars())


async def purge_events(conn: AsyncConnection, before: datetime, limit: int, *, org_seq: int) -> int:
    """Up to `limit` of the organization's events recorded before `before` that no delivery
    refers to; how many. (By organization: events are indexed by organization and time.)"""
    await take_turns_on_events(conn, org_seq)
    referred = exists().where(webhook_deliveries.c.event_seq == events.c.seq)
    chosen = (
        select(events.c.seq)
        .where(events.c.org_seq == org_seq, events.c.occurred_at < before, ~referred)
        .order_by(events.c.occurred_at)
        .limit(limit)
    )
    seqs = list((await conn.execute(chosen)).scalars())
    if seqs:
        await conn.execute(delete(events).where(events.c.seq.in_(seqs)))
    return len(seqs)
