"""The expiry sweep: expire credits past their last day and recount the balances of accounts
that crossed a day boundary. Reads do the same for what they touch, so the sweep only keeps
the books tidy; it never changes what a read would show."""

import asyncio
import logging
from collections.abc import Coroutine
from datetime import datetime
from typing import Any

from drawdown.clock import Clock
from drawdown.errors import Unavailable
from drawdown.jobs.outbox import purge_outbox
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


async def run_periodically(
    db: Database, clock: Clock, interval_seconds: float, webhook_retention_days: int | None = None
) -> None:
    """The sweep, then (with `webhook_retention_days`) the outbox's clean-up, every round."""
    while True:
        await _guarded("expiry sweep", _sweep_round(db, clock))
        if webhook_retention_days:
            await _guarded(
                "webhook clean-up", _purge_round(db, clock.now(), webhook_retention_days)
            )
        await asyncio.sleep(interval_seconds)


async def _sweep_round(db: Database, clock: Clock) -> None:
    swept = await sweep(db, clock)
    if swept:
        log.info("expiry sweep brought %d accounts up to date", swept)


async def _purge_round(db: Database, now: datetime, retention_days: int) -> None:
    purged = await purge_outbox(db, now, retention_days)
    if purged.deliveries or purged.events:
        log.info(
            "webhook clean-up deleted %d deliveries and %d events",
            purged.deliveries,
            purged.events,
        )


async def _guarded(name: str, work: Coroutine[Any, Any, None]) -> None:
    try:
        await work
    except Unavailable as error:  # the database is down or busy: one line, not a trace
        log.warning("%s skipped this round: %s", name, error.message)
    except Exception:  # the loop must keep running; the next round retries
        log.exception("%s failed", name)
