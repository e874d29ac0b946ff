"""The applier (docs/usage.md, "How it runs"): applies accepted usage events to the credits,
in every server process (or alone, `drawdown apply-usage`).

An ingest wakes its own process's applier at once with the accounts it stored events for; every
applier also polls the database for accounts with events pending since before the last poll
(another process's, or ones a crash left: the fresh ones are their own process's to apply, so
two processes rarely queue on one account's lock for nothing). Each account is drained by
`Writes.burn`, a batch at a time: burns of many accounts share the coalescer's transactions,
and each holds its accounts' locks. A burn skips an account another transaction holds (that
one applies what was pending when it read) and comes back for it shortly, so no process waits
for another and neither applies what the other did.
"""

import asyncio
import contextlib
import logging
from collections.abc import Iterable
from datetime import datetime, timedelta

from drawdown.errors import Unavailable
from drawdown.services.ingest import AccountRef
from drawdown.services.writes import Writes
from drawdown.store import usage
from drawdown.store.database import Database

log = logging.getLogger("drawdown.applier")

DEFAULT_POLL_SECONDS = 0.2
DEFAULT_BATCH = 2000
# accounts taken from one poll; the rest wait for the next
POLL_ACCOUNTS = 1000
POLL_GRACE_SECONDS = 1.0
# events waiting this long for a burn: applying is behind (the lag goal is 2 s; 1 s gave a
# p99 of 2.2 to 2.3 s in the bench, 0.5 s 1.5 to 2.0 s)
DEFAULT_BEHIND_SECONDS = 0.5
# accounts one burn write names; the coalescer runs many such writes in one transaction
ACCOUNTS_PER_BURN = 16


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
        # the least time from one round's start to the next's (default: a poll interval)
        self.gather_seconds = poll_seconds if gather_seconds is None else gather_seconds
        self.behind_seconds = behind_seconds
        # a poll takes events pending this long: fresher ones are their own process's to apply
        self.grace_seconds = max(POLL_GRACE_SECONDS, 2 * poll_seconds)
        self.batch = batch
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
        # accounts whose shared burn failed: each is burned alone from then on
        self._alone: set[int] = set()
        # for tests and the bench: events applied by this applier
        self.applied = 0

    async def behind(self, account_seqs: set[int]) -> bool:
        """Whether applying lags behind what is accepted: some account this process woke has
        waited more than `behind_seconds` for its events to be applied (whoever applies them).
        Ingestion then holds its answers (services/ingest.py), so senders slow to what can be
        applied within the lag goal. (`account_seqs`: the accounts of the answers held.)"""
        if not self._waiting_since:
            return False
        oldest = min(self._waiting_since.values())
        return asyncio.get_running_loop().time() - oldest > self.behind_seconds

    def wake(self, accounts: Iterable[AccountRef]) -> None:
        """Apply these accounts' new events now (called by ingestion after its COMMIT)."""
        now = asyncio.get_running_loop().time()
        for account in accounts:
            self._woken[account.seq] = account
            # events that came during the account's burn wait for the next one
            waiting = self._again_since if account.seq in self._busy else self._waiting_since
            waiting.setdefault(account.seq, now)
        self._wake.set()

    async def run(self) -> None:
        """Forever, in rounds: apply what was woken, and what the database holds every poll.
        A round starts once the one before it has finished and at least `gather_seconds` after
        it started: under load the rounds run back to back and each gathers what came during
        the last, so an account's burn, which costs about the same for one event as for many,
        takes more of them at once; when idle, events wait at most about `gather_seconds`."""
        loop = asyncio.get_running_loop()
        last_poll = round_began = loop.time()
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), timeout=self.poll_seconds)
            # let the woken accounts gather more events, up to `gather_seconds` after the last
            # round began
            await asyncio.sleep(max(0.0, round_began + self.gather_seconds - loop.time()))
            self._wake.clear()
            round_began = loop.time()
            todo = self._take_woken()
            # poll even while woken all the time: other processes' events wait for it
            if loop.time() - last_poll >= self.poll_seconds:
                last_poll = loop.time()
                before = self.writes.clock.now() - timedelta(seconds=self.grace_seconds)
                try:
                    todo += await self._pending_accounts(before)
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

    async def _pending_accounts(self, received_before: datetime | None = None) -> list[AccountRef]:
        async with self.db.read() as conn:
            found = await usage.accounts_with_pending(conn, POLL_ACCOUNTS, received_before)
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
                    continue
                if outcome.refused is not None:
                    log.error(
                        "usage of account %s cannot be applied: %s", account.id, outcome.refused
                    )
                self.applied += outcome.applied
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
            woken_again = []
            for account in chunk:
                self._busy.discard(account.seq)
                since = self._again_since.pop(account.seq, None)
                if since is not None:
                    self._waiting_since.setdefault(account.seq, since)
                found = self._again.pop(account.seq, None)
                if found is not None and found not in again:
                    woken_again.append(found)
        if again:
            self._apply(again)  # a backlog: its next batch at once
        # events that came during the burn, and accounts another transaction held (it applies
        # what was pending when it read; what came since is ours): with the next woken ones
        self.wake(woken_again + held)
