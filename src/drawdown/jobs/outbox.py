"""The outbox's clean-up (`drawdown purge-webhooks`, and every server's periodic sweep;
docs/webhooks.md, "Retention"): finished deliveries and their attempts, then events no
delivery needs, once older than DRAWDOWN_WEBHOOK_RETENTION_DAYS (30 by default)."""

import functools
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy.ext.asyncio import AsyncConnection

from drawdown.store import outbox_retention
from drawdown.store.database import Database

ROWS_PER_TRANSACTION = 1000
MIN_RETENTION_DAYS = 1


@dataclass(frozen=True)
class Purged:
    deliveries: int
    events: int


async def purge_outbox(
    db: Database,
    now: datetime,
    retention_days: int,
    *,
    per_transaction: int = ROWS_PER_TRANSACTION,
) -> Purged:
    """Delete what is past the retention at `now`, a short transaction per batch."""
    if retention_days < MIN_RETENTION_DAYS:
        raise ValueError(
            f"webhook deliveries and events are kept at least {MIN_RETENTION_DAYS} day"
        )
    before = now - timedelta(days=retention_days)
    deliveries = await _in_batches(db, outbox_retention.purge_deliveries, before, per_transaction)
    async with db.read() as conn:
        organizations = await outbox_retention.organizations(conn)
    events = 0
    for org_seq in organizations:
        purge = functools.partial(outbox_retention.purge_events, org_seq=org_seq)
        events += await _in_batches(db, purge, before, per_transaction)
    return Purged(deliveries, events)


async def _in_batches(
    db: Database,
    purge: Callable[[AsyncConnection, datetime, int], Awaitable[int]],
    before: datetime,
    limit: int,
) -> int:
    deleted = 0
    while True:

        async def work(conn: AsyncConnection) -> int:
            return await purge(conn, before, limit)

        done = await db.transact(work)
        deleted += done
        if done < limit:
            return deleted
