"""The sweep's `credit.expiring_soon` (docs/webhooks.md): credits near their last day are
reported once each, the event and its marker written in one transaction."""

from sqlalchemy.ext.asyncio import AsyncConnection

from drawdown.clock import Clock
from drawdown.ledger.expiring import DEFAULT_DAYS, expiring_soon, is_due
from drawdown.store import alerts, outbox
from drawdown.store.database import Database

# credits reported per transaction
BATCH = 500


async def report_expiring_soon(db: Database, clock: Clock) -> int:
    """Record credit.expiring_soon for every credit due now; returns how many."""
    reported = 0
    while True:

        async def work(conn: AsyncConnection) -> tuple[int, int]:
            now = clock.now()
            days = await alerts.expiring_soon_days(conn)
            found = await alerts.credits_expiring(conn, now.date(), days, DEFAULT_DAYS, BATCH)
            due = [c for c in found if is_due(c, now.date(), days.get(c.org_seq, DEFAULT_DAYS))]
            await alerts.mark_expiring_soon(conn, [c.seq for c in due], now)
            await outbox.insert_events(
                conn, [expiring_soon(c, days.get(c.org_seq, DEFAULT_DAYS), now) for c in due]
            )
            return len(found), len(due)

        found, due = await db.transact(work)
        reported += due
        if found < BATCH:
            return reported
