"""Which accounts this applier owns (PostgreSQL, docs/usage.md "How it runs"): the live appliers
of a database each hold a seat (store/seats.py), and an account belongs to the seat whose rank
among those held is its seq modulo their number. Under load each account is then burned by one
process, which takes all its events since its last burn whichever process stored them, instead
of by every process that stored some, each taking a few: a burn costs about as much for one
event as for many.

Ownership only decides who burns first: every burn still locks its accounts, so two appliers
that disagree for a moment (a seat just taken or freed) apply nothing twice, and every applier
now and then takes anyone's account whose events have waited `applier.STUCK_SECONDS`, so a
stuck owner leaves nothing behind.
"""

import asyncio
import logging
from collections.abc import Callable

import asyncpg

from drawdown.store import seats
from drawdown.store.dead_peers import DEAD_PEER_SETTINGS

log = logging.getLogger("drawdown.applier")


class Seating:
    def __init__(self, dsn: str, wait_seconds: float) -> None:
        self.dsn = dsn
        self.wait_seconds = wait_seconds
        self._conn: asyncpg.Connection | None = None
        self.seat: int | None = None
        self._rank = 0
        self._count = 1
        self._marked = False  # whether this seat's behind-mark is held
        # another applier of the database was behind at the last refresh
        self.others_behind = False

    @property
    def seated(self) -> bool:
        return self.seat is not None

    def owns(self, account_seq: int) -> bool:
        """Unseated (not yet, or its connection was lost), an applier owns every account: it
        burns what its own process stored, as if it were alone."""
        return self.seat is None or account_seq % self._count == self._rank

    @property
    def share(self) -> tuple[int, int]:
        """(number of seats, this seat's rank): it owns the accounts whose seq % number is its
        rank."""
        return self._count, self._rank

    async def keep(self, behind: Callable[[], bool], every: float) -> None:
        """Forever: `refresh` every `every` seconds, on its own beside the applier's rounds (a
        round can take longer than backpressure may wait to hear of another's backlog)."""
        while True:
            await self.refresh(behind())
            await asyncio.sleep(every)

    async def refresh(self, behind: bool) -> None:
        """Take a seat if it has none, show whether it is `behind`, and count the seats held.
        A failure leaves it unseated until the next refresh (its seat is freed with its
        session)."""
        try:
            # asyncio.timeout, not wait_for: on Python 3.11 wait_for swallows a cancellation
            # that arrives as the awaited work finishes, and `keep` would then never stop
            async with asyncio.timeout(self.wait_seconds):
                await self._refresh(behind)
        except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError, TimeoutError) as error:
            log.warning("the applier lost its seat (it applies alone until it has one): %s", error)
            await self.close()
        except Exception:  # a bug: still never leave a stale share or mark behind
            log.exception("the applier lost its seat (it applies alone until it has one)")
            await self.close()

    async def _refresh(self, behind: bool) -> None:
        if self._conn is None or self._conn.is_closed():
            self._conn = await asyncpg.connect(
                self.dsn, timeout=self.wait_seconds, server_settings=DEAD_PEER_SETTINGS
            )
            self._marked = False
            self.seat = await seats.take_seat(self._conn)
            if self.seat is None:
                log.warning("all %d applier seats are taken: it applies alone", seats.MAX_SEATS)
        if self.seat is not None and behind != self._marked:
            await seats.mark_behind(self._conn, self.seat, behind)
            self._marked = behind
        found = await seats.held(self._conn)
        if self.seat is None or self.seat not in found.seats:
            self._count, self._rank = 1, 0
        else:
            self._count, self._rank = len(found.seats), found.seats.index(self.seat)
        self.others_behind = any(seat != self.seat for seat in found.behind)

    async def close(self) -> None:
        conn, self._conn = self._conn, None
        self.seat = None
        self._count, self._rank = 1, 0
        self._marked = False
        self.others_behind = False
        if conn is not None:
            # at once, not a graceful close: it may be cut off in a query (a cancelled refresh),
            # and a graceful close can wait on it. The session, the seat with it, ends as the
            # socket closes.
            conn.terminate()
