"""The outbox's clean-up (docs/webhooks.md, "Retention"), on both engines through SQLAlchemy:
finished deliveries (SUCCEEDED or FAILED) with their attempts, then events no delivery refers
to any more, each older than a cut-off, a batch per transaction. A PENDING delivery is never
deleted, however old (it waits for a retry, or for its endpoint to be enabled again), and
neither is its event."""

from datetime import datetime

from sqlalchemy import delete, exists, select
from sqlalchemy.ext.asyncio import AsyncConnection

from drawdown.store.tables import events, webhook_attempts, webhook_deliveries
from drawdown.store.tables import organizations as organizations_table

FINISHED = ("SUCCEEDED", "FAILED")


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
