"""The expiry sweep: expire credits past their last day and recount the balances of accounts
that crossed a day boundary. Reads do the same for what they touch, so the sweep only keeps
the books tidy; it never changes what a read would show."""

import asyncio
import logging

from drawdown.clock import Clock
from drawdown.errors import Unavailable
from drawdown.services.credits import bring_accounts_to_today
from drawdown.services.expiring import report_expiring_soon
from drawdown.store import ledger
from drawdown.store.database import Database

log = logging.getLogger("drawdown.expiry")


async def sweep(db: Database, clock: Clock) -> int:
    """Bring every account that needs it up to today, and record credit.expiring_soon for the
    credits near their last day; returns how many accounts were brought up to date."""
    async with db.read() as conn:
        due = await ledger.accounts_due(conn, clock.now().date())
    await bring_accounts_to_today(db, due, clock)
    await report_expiring_soon(db, clock)
    return len(due)


async def run_periodically(db: Database, clock: Clock, interval_seconds: float) -> None:
    while True:
        try:
            swept = await sweep(db, clock)
            if swept:
                log.info("expiry sweep brought %d accounts up to date", swept)
        except Unavailable as error:  # the database is down or busy: one line, not a trace
            log.warning("expiry sweep skipped this round: %s", error.message)
        except Exception:  # the sweep must keep running; the next round retries
            log.exception("expiry sweep failed")
        await asyncio.sleep(interval_seconds)
