"""The applier (docs/usage.md, "How it runs"): applies accepted usage events to the credits,
in every server process (or alone, `drawdown apply-usage`).

An ingest wakes its own process's applier at once with the accounts it stored events for; every
applier also polls the database for accounts with pending events (another process's, or ones
a crash left). Each account is drained by `Writes.burn`, a batch at a time: burns of many
accounts share the coalescer's transactions, and each holds its account's lock, so two
processes on one account take turns and neither applies what the other did.
"""

import asyncio
import contextlib
import logging
from collections.abc import Iterable

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


class Applier:
    def __init__(
        self,
        db: Database,
        writes: Writes,
        *,
        poll_seconds: float = DEFAULT_POLL_SECONDS,
        batch: int = DEFAULT_BATCH,
    ) -> None:
        self.db = db
        self.writes = writes
        self.poll_seconds = poll_seconds
        self.batch = batch
        self._woken: dict[int, AccountRef] = {}
        self._wake = asyncio.Event()
        # accounts being drained now, and those woken again meanwhile
        self._draining: dict[int, asyncio.Task[None]] = {}
        self._again: set[int] = set()
        # for tests and the bench: events applied by this applier
        self.applied = 0

    def wake(self, accounts: Iterable[AccountRef]) -> None:
        """Apply these accounts' new events now (called by ingestion after its COMMIT)."""
        for account in accounts:
            self._woken[account.seq] = account
        self._wake.set()

    async def run(self) -> None:
        """Forever: apply what is woken at once, and what the database holds every poll."""
        loop = asyncio.get_running_loop()
        last_poll = loop.time()
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), timeout=self.poll_seconds)
            self._wake.clear()
            todo = self._take_woken()
            # poll even while woken all the time: other processes' events wait for it
            if loop.time() - last_poll >= self.poll_seconds:
                last_poll = loop.time()
                try:
                    todo += await self._pending_accounts()
                except Unavailable as error:
                    log.warning("the applier could not look for pending events: %s", error.message)
                except Exception:
                    log.exception("the applier could not look for pending events")
            for account in todo:
                self._drain(account)

    async def drain(self) -> int:
        """Apply everything pending now (until a round applies nothing: an account that keeps
        failing stays pending), then return how many events were applied."""
        before = self.applied
        while True:
            round_began = self.applied
            for account in self._take_woken() + await self._pending_accounts():
                self._drain(account)
            running = list(self._draining.values())
            if running:
                await asyncio.gather(*running, return_exceptions=True)
            if self.applied == round_began:
                return self.applied - before

    async def stop(self) -> None:
        for task in list(self._draining.values()):
            task.cancel()
        for task in list(self._draining.values()):
            with contextlib.suppress(asyncio.CancelledError):
                await task

    def _take_woken(self) -> list[AccountRef]:
        woken = list(self._woken.values())
        self._woken.clear()
        return woken

    async def _pending_accounts(self) -> list[AccountRef]:
        async with self.db.read() as conn:
            found = await usage.accounts_with_pending(conn, POLL_ACCOUNTS)
        return [AccountRef(seq, org_seq, account_id) for seq, org_seq, account_id in found]

    def _drain(self, account: AccountRef) -> None:
        if account.seq in self._draining:
            # events may have come after its batch was read: one more round when it ends
            self._again.add(account.seq)
            return
        task = asyncio.get_running_loop().create_task(self._drain_account(account))
        self._draining[account.seq] = task

    async def _drain_account(self, account: AccountRef) -> None:
        try:
            while True:
                self._again.discard(account.seq)
                outcome = await self.writes.burn(account.org_seq, account.id, self.batch)
                self.applied += outcome.applied
                if not outcome.more and account.seq not in self._again:
                    return
        except Unavailable as error:
            log.warning("the applier skipped account %s this round: %s", account.id, error.message)
        except Exception:
            # the next poll takes the account again; its events stay pending
            log.exception("the applier failed on account %s", account.id)
        finally:
            self._draining.pop(account.seq, None)
            self._again.discard(account.seq)
