"""The clean-up of usage events past their retention (`drawdown purge-events`; docs/usage.md):
every applied event whose timestamp is more than DRAWDOWN_EVENT_RETENTION_DAYS (at least 45)
and one more day old is deleted, what it recorded kept in sums. Since ingestion refuses an
event more than 45 days old, an id still in its window is never forgotten."""

from datetime import timedelta

from sqlalchemy.ext.asyncio import AsyncConnection

from drawdown.clock import Clock
from drawdown.config import MIN_RETENTION_DAYS
from drawdown.store import purge
from drawdown.store.database import Database

# a day more than the retention: clocks of different processes may disagree a little
MARGIN = timedelta(days=1)
EVENTS_PER_TRANSACTION = 1000


async def purge_events(
    db: Database,
    clock: Clock,
    retention_days: int,
    *,
    per_transaction: int = EVENTS_PER_TRANSACTION,
) -> int:
    """Delete what is due; how many events were deleted."""
    if retention_days < MIN_RETENTION_DAYS:
        raise ValueError(f"events are kept at least {MIN_RETENTION_DAYS} days")
    cutoff = clock.now() - timedelta(days=retention_days) - MARGIN
    async with db.read() as conn:
        due = await purge.accounts_with_events_before(conn, cutoff)
    deleted = 0
    for account_seq in due:
        while True:

            async def work(conn: AsyncConnection, seq: int = account_seq) -> int:
                return await purge.purge_some(conn, seq, cutoff, per_transaction)

            done = await db.transact(work)
            deleted += done
            if done < per_transaction:
                break
    return deleted
