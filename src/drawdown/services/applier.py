"""The applier (docs/usage.md, "How it runs"): applies accepted usage events to the credits,
in every server process (or alone, `drawdown apply-usage`).

On PostgreSQL the appliers share the accounts out (services/seating.py): each owns the accounts
that fall to its seat. An ingest wakes its own process's applier at once with the accounts it
owns of those it stored events for; every applier polls the database for the accounts it owns
with events pending, whichever process stored them, and now and then for anyone's that have
waited long (a stuck owner's). Unseated (SQLite, one process; or its seat lost), an applier
burns what its own process stored and polls for events pending since before the last poll
(another process's, or ones a crash left). Each account is drained by `Writes.burn`, a batch at
a time: burns of many accounts share the coalescer's transactions, and each holds its
accounts' locks. A burn skips an account another transaction holds (that one applies what was
pending when it read) and comes back for it shortly, so no process waits for another and
neither applies what the other did, even while two disagree about who owns it.
"""

import asyncio
import contextlib
import logging
from collections.abc import Iterable
from datetime import datetime, timedelta

from drawdown.errors import Unavailable
from drawdown.services.ingest import AccountRef
from drawdown.services.seating import Seating
from drawdown.services.writes import Writes
from drawdown.store import usage
from drawdown.store.database import Database, asyncpg_dsn

log = logging.getLogger("drawdown.applier")

DEFAULT_POLL_SECONDS = 0.2
DEFAULT_BATCH = 2000
# accounts taken from one poll; the rest wait for the next
POLL_ACCOUNTS = 1000
POLL_GRACE_SECONDS = 1.0
# the least time from one round's start to the next: under load each account's burn takes
# what came in that long (bench: 0.2 s burned each of 1,000 accounts about twice a second, at
# 4 events a burn; 0.5 to 0.6 s with seats took 35 % less CPU per event)
DEFAULT_GATHER_SECONDS = 0.5
# an account whose events have waited this long for a burn beyond the gather: applying is
# behind (the lag goal is 2 s; with seats, 0.4 s gave a p99 of 1.3 to 2.1 s in the bench on one
# busy account, 0.3 s 1.0 to 1.4 s)
DEFAULT_BEHIND_SECONDS = 0.3
# accounts one burn write names; the coalescer runs many such writes in one transaction
ACCOUNTS_PER_BURN = 16
# an account whose burn took this many events is burned again as soon as the burn ends if more
# came meanwhile: its burns cost little per event already, and waiting for the next round
# would only add to its events' lag (one busy account: p99 1.9 s with a gather of 0.5 s)
LARGE_BURN = 100
# ... and looked at again this soon after a burn that found all its events applied, until
# LARGE_FOR_SECONDS have passed since its last large burn (a burn that finds none costs a few
# ms): one burn that happens to find few must not send it back to the rounds
LARGE_RECHECK_SECONDS = 0.05
LARGE_FOR_SECONDS = 1.0
# a seated applier burns another's account only once its events have waited this long: under
# load an owner's busy account is legitimately a second or so behind, and two burning it
# would only queue on its lock
STUCK_SECONDS = 5.0
# how often an applier tells the others whether it is behind, and hears whether they are
SEAT_REFRESH_SECONDS = 0.1


class Applier:
    def __init__(
        self,
        db: Database,
        writes: Writes,
        *,
        poll_seconds: float = DEFAULT_POLL_SECONDS,
        batch: int = DEFAULT_BATCH,
        gather_seconds: float | None = None,
        behind_seconds: float = DEFAULT_BEHIND_SECONDS,
    ) -> None:
        self.db = db
        self.writes = writes
        self.poll_seconds = poll_seconds
        # the least time from one round's start to the next's
        self.gather_seconds = DEFAULT_GATHER_SECONDS if gather_seconds is None else gather_seconds
        self.behind_seconds = behind_seconds
        # a poll takes events pending this long: fresher ones are their own process's to apply
        self.grace_seconds = max(POLL_GRACE_SECONDS, 2 * poll_seconds)
        self.batch = batch
        # on PostgreSQL the appliers share the accounts out (services/seating.py)
        self.seating = Seating(asyncpg_dsn(db.url), db.wait_seconds) if db.is_postgresql else None
        self._woken: dict[int, AccountRef] = {}
        self._wake = asyncio.Event()
        # accounts in a burn in flight, and those woken again meanwhile
        self._busy: set[int] = set()
        self._again: dict[int, AccountRef] = {}
        self._burns: set[asyncio.Task[None]] = set()
        # since when each account woken has had events waiting for a burn (or for the next
        # one, for events that came during its burn): what `behind` judges by
        self._waiting_since: dict[int, float] = {}
        self._again_since: dict[int, float] = {}
        # busy accounts: when a burn of each last took LARGE_BURN events or more; for
        # LARGE_FOR_SECONDS after, it skips the gather
        self._large: dict[int, float] = {}
        self._rechecks: set[asyncio.TimerHandle] = set()
        self._running = False  # `run` is on: burns look again at busy accounts by themselves
        # accounts whose shared burn failed: each is burned alone from then on
        self._alone: set[int] = set()
        # for tests and the bench: events applied by this applier
        self.applied = 0

    async def behind(self, account_seqs: set[int]) -> bool:
        """Whether applying lags behind what is accepted: some account this applier owns has
        waited more than `behind_seconds` for its events to be applied, beyond the gather it
        waits for on purpose (a busy account does not), or another applier said so of its own
        at its last refresh (services/seating.py). Ingestion then holds its answers
        (services/ingest.py), so senders slow to what can be applied within the lag goal.
        (`account_seqs`: the accounts of the answers held.)"""
        return self._late() or (self.seating is not None and self.seating.others_behind)

    def _late(self) -> bool:
        if not self._waiting_since:
            return False
        now = asyncio.get_running_loop().time()
        strict = now - self.behind_seconds
        if any(since < strict for seq, since in self._waiting_since.items() if self._is_large(seq)):
            return True
        return min(self._waiting_since.values()) < strict - self.gather_seconds

    def wake(self, accounts: Iterable[AccountRef]) -> None:
        """Apply these accounts' new events now (called by ingestion after its COMMIT). An
        account another applier owns is left to it: its poll finds the events."""
        seating = self.seating
        owned = [account for account in accounts if seating is None or seating.owns(account.seq)]
        self._note_waiting(owned)
        for account in owned:
            self._woken[account.seq] = account
        self._wake.set()

    def _note_waiting(self, accounts: Iterable[AccountRef]) -> None:
        now = asyncio.get_running_loop().time()
        for account in accounts:
            # events that came during the account's burn wait for the next one
            waiting = self._again_since if account.seq in self._busy else self._waiting_since
            waiting.setdefault(account.seq, now)

    async def run(self) -> None:
        """Forever, in rounds: apply what was woken, and what the database holds every poll.
        A round starts once the one before it has finished and at least `gather_seconds` after
        it started: under load the rounds run back to back and each gathers what came during
        the last, so an account's burn, which costs about the same for one event as for many,
        takes more of them at once; when idle, events wait at most about `gather_seconds`."""
        seating = None
        if self.seating is not None:
            every = min(SEAT_REFRESH_SECONDS, self.poll_seconds)
            seating = asyncio.get_running_loop().create_task(self.seating.keep(self._late, every))
        self._running = True
        try:
            await self._rounds()
        finally:
            self._running = False
            if seating is not None:
                seating.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await seating

    async def _rounds(self) -> None:
        loop = asyncio.get_running_loop()
        last_poll = last_late_poll = round_began = loop.time()
        while True:
            # asyncio.timeout, not wait_for, which on Python 3.11 can swallow the cancellation
            # that stops this loop when it arrives as the wake does
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self.poll_seconds):
                    await self._wake.wait()
            # let the woken accounts gather more events, up to `gather_seconds` after the last
            # round began
            await asyncio.sleep(max(0.0, round_began + self.gather_seconds - loop.time()))
            self._wake.clear()
            round_began = loop.time()
            todo = self._take_woken()
            # poll even while woken all the time: other processes' events wait for it
            if loop.time() - last_poll >= self.poll_seconds:
                last_poll = loop.time()
                late = loop.time() - last_late_poll >= self.grace_seconds
                if late:
                    last_late_poll = loop.time()
                try:
                    todo += await self._poll(late)
                except Unavailable as error:
                    log.warning("the applier could not look for pending events: %s", error.message)
                except Exception:
                    log.exception("the applier could not look for pending events")
            # a backlog's next batches (`_burn`) run on beside the rounds
            await asyncio.gather(*self._apply(todo), return_exceptions=True)

    async def drain(self) -> int:
        """Apply everything pending now (until a round applies nothing: an account that keeps
        failing stays pending), then return how many events were applied."""
        before = self.applied
        while True:
            round_began = self.applied
            self._apply(self._take_woken() + await self._pending_accounts())
            await self._settled()
            if self.applied == round_began:
                return self.applied - before

    async def _settled(self) -> None:
        """Until no burn is in flight (burns that follow a backlog included)."""
        while self._burns:
            await asyncio.gather(*list(self._burns), return_exceptions=True)

    async def stop(self) -> None:
        for task in list(self._burns):
            task.cancel()
        for task in list(self._burns):
            with contextlib.suppress(asyncio.CancelledError):
                await task
        for handle in self._rechecks:
            handle.cancel()
        self._rechecks.clear()
        if self.seating is not None:
            await self.seating.close()

    def _forget_waiting(self, accounts: list[AccountRef]) -> None:
        """Accounts whose burn failed are the poll's to find again (if their events are still
        pending then): `behind` no longer counts them, or one that another process applies
        meanwhile would hold every answer."""
        for account in accounts:
            self._waiting_since.pop(account.seq, None)

    def _take_woken(self) -> list[AccountRef]:
        woken = list(self._woken.values())
        self._woken.clear()
        return woken

    async def _poll(self, late: bool) -> list[AccountRef]:
        """The accounts to burn besides the woken ones. Seated: those it owns, however fresh
        their events (other processes store events for them and do not burn them), and, every
        grace period, anyone's whose events have waited `STUCK_SECONDS` (a stuck owner's: a
        crashed one's seat is freed with its session, and the others share its accounts at
        their next refresh). Unseated: those whose events have waited the grace period, every
        poll: fresher events are their own process's to apply."""
        seating = self.seating
        now = self.writes.clock.now()
        if seating is None or not seating.seated:
            return await self._pending_accounts(now - timedelta(seconds=self.grace_seconds))
        owned = await self._pending_accounts(share=seating.share)
        self._note_waiting(owned)
        if not late:
            return owned
        return owned + await self._pending_accounts(now - timedelta(seconds=STUCK_SECONDS))

    async def _pending_accounts(
        self, received_before: datetime | None = None, share: tuple[int, int] | None = None
    ) -> list[AccountRef]:
        async with self.db.read() as conn:
            found = await usage.accounts_with_pending(conn, POLL_ACCOUNTS, received_before, share)
        return [AccountRef(seq, org_seq, account_id) for seq, org_seq, account_id in found]

    def _apply(self, accounts: Iterable[AccountRef]) -> list[asyncio.Task[None]]:
        """Start burns for these accounts, a few accounts to each write (the coalescer puts
        many writes in one transaction); one already in a burn gets one more round after it,
        since its events may have come after its batch was read. Returns the burns started."""
        todo: dict[int, AccountRef] = {}
        for account in accounts:
            if account.seq in self._busy:
                self._again[account.seq] = account
            else:
                todo[account.seq] = account
        alone = [[account] for account in todo.values() if account.seq in self._alone]
        chosen = [account for account in todo.values() if account.seq not in self._alone]
        chunks = alone + [
            chosen[start : start + ACCOUNTS_PER_BURN]
            for start in range(0, len(chosen), ACCOUNTS_PER_BURN)
        ]
        started = []
        for chunk in chunks:
            self._busy.update(account.seq for account in chunk)
            task = asyncio.get_running_loop().create_task(self._burn(chunk))
            self._burns.add(task)
            task.add_done_callback(self._burns.discard)
            started.append(task)
        return started

    def _is_large(self, account_seq: int) -> bool:
        since = self._large.get(account_seq)
        if since is None:
            return False
        if asyncio.get_running_loop().time() - since <= LARGE_FOR_SECONDS:
            return True
        del self._large[account_seq]
        return False

    def _recheck_later(self, account: AccountRef) -> None:
        def recheck() -> None:
            self._rechecks.discard(handle)
            if self.seating is None or self.seating.owns(account.seq):
                self._apply([account])

        loop = asyncio.get_running_loop()
        handle = loop.call_later(LARGE_RECHECK_SECONDS, recheck)
        self._rechecks.add(handle)

    async def _burn(self, chunk: list[AccountRef]) -> None:
        again: list[AccountRef] = []
        held: list[AccountRef] = []  # another transaction held them: back for them shortly
        try:
            outcomes = await self.writes.burn(
                [(account.org_seq, account.id) for account in chunk], self.batch
            )
            for account in chunk:
                outcome = outcomes.get((account.org_seq, account.id))
                if outcome is None:
                    held.append(account)
                    if self.seating is not None and not self.seating.owns(account.seq):
                        # no longer ours (the seats changed): its new owner judges it
                        self._waiting_since.pop(account.seq, None)
                    continue
                if outcome.refused is not None:
                    log.error(
                        "usage of account %s cannot be applied: %s", account.id, outcome.refused
                    )
                self.applied += outcome.applied
                if outcome.applied >= LARGE_BURN:
                    self._large[account.seq] = asyncio.get_running_loop().time()
                if outcome.more:
                    again.append(account)
                else:  # all it had when the burn read it is applied
                    self._waiting_since.pop(account.seq, None)
        except Unavailable as error:
            log.warning("the applier skipped %d accounts this round: %s", len(chunk), error.message)
            self._forget_waiting(chunk)
        except Exception:
            # the next poll takes these accounts again; their events stay pending. One account
            # the database refuses must not hold the others back: each runs alone next time.
            log.exception("the applier failed on %d accounts", len(chunk))
            if len(chunk) > 1:
                self._alone.update(account.seq for account in chunk)
            self._forget_waiting(chunk)
        finally:
            woken_again: list[AccountRef] = []
            for account in chunk:
                self._busy.discard(account.seq)
                since = self._again_since.pop(account.seq, None)
                if since is not None:
                    self._waiting_since.setdefault(account.seq, since)
                found = self._again.pop(account.seq, None)
                if found is not None and found not in again:
                    (again if self._is_large(account.seq) else woken_again).append(found)
                elif self._is_large(account.seq) and account not in again and self._running:
                    # nothing woke it meanwhile, but other processes store events for it
                    # without waking it (seating.py): look again shortly, not a round later
                    self._recheck_later(account)
        if again:
            # a backlog, or a busy account's events that came during its burn: at once
            self._apply(again)
        # events that came during the burn, and accounts another transaction held (it applies
        # what was pending when it read; what came since is ours): with the next woken ones
        self.wake(woken_again + held)
