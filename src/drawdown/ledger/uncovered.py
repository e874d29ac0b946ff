"""`usage.uncovered` (docs/webhooks.md): usage nothing could pay is reported at most once per
account per hour. What is uncovered between two reports waits, summed exactly, for the next
one, so an account's reports add up to every uncovered amount up to the last of them."""

from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal

from drawdown.ledger.money import ZERO, add

REPORT_EVERY = timedelta(hours=1)


@dataclass(frozen=True)
class UncoveredMark:
    last_sent_at: datetime | None = None
    unreported: Decimal = ZERO
    unreported_since: datetime | None = None


@dataclass(frozen=True)
class Report:
    amount: Decimal
    since: datetime


def report(
    mark: UncoveredMark, uncovered: Decimal, now: datetime
) -> tuple[UncoveredMark, Report | None]:
    """Add `uncovered` (> 0) to what waits; report it all when the last report is an hour old
    (or there was none)."""
    waiting = add(mark.unreported, uncovered)
    since = mark.unreported_since or now
    if mark.last_sent_at is None or now - mark.last_sent_at >= REPORT_EVERY:
        return UncoveredMark(now, ZERO, None), Report(waiting, since)
    return UncoveredMark(mark.last_sent_at, waiting, since), None
