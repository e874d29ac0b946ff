"""Every write that moves money, as the API calls it: what each needs loaded, and which
decision of `ledger/` it runs, handed to the process's coalescer (`app.state.writes`). The
HTTP layer never opens a transaction itself."""

from collections.abc import Callable
from datetime import datetime

from drawdown.clock import Clock
from drawdown.ledger import burning, decisions
from drawdown.ledger.burning import BurnOutcome
from drawdown.ledger.changes import Changes, Loaded
from drawdown.ledger.records import ApplicationRecord, CreditRecord
from drawdown.ledger.requests import ApplicationRequest, GrantRequest
from drawdown.services.coalescer import Coalescer
from drawdown.store.interface import Wants, WriteStore


class Writes:
    def __init__(self, store: WriteStore, clock: Clock, *, in_flight: int = 1) -> None:
        self.store = store
        self.clock = clock
        self.coalescer = Coalescer(store, clock, in_flight=in_flight)

    async def grant(self, org_seq: int, requests: list[GrantRequest]) -> list[CreditRecord]:
        """Grant every request or none; answers in request order."""

        def wants(group: Wants) -> None:
            for request in requests:
                group.accounts.add((org_seq, request.account_id))
                if request.idempotency_key is not None:
                    group.idempotency_keys.add((org_seq, request.idempotency_key))

        return await self.coalescer.submit(
            lambda loaded, now: decisions.grant(loaded, org_seq, requests, now),
            wants,
            adds_only=True,
        )

    async def apply(
        self, org_seq: int, account_id: str, request: ApplicationRequest
    ) -> ApplicationRecord:
        def wants(group: Wants) -> None:
            group.accounts.add((org_seq, account_id))
            group.invoices.add((org_seq, account_id, request.invoice_id))
            group.candidates.add((org_seq, account_id, request.as_of or group.today))

        return await self.coalescer.submit(
            lambda loaded, now: decisions.apply(loaded, org_seq, account_id, request, now), wants
        )

    async def capture(self, org_seq: int, account_id: str, invoice_id: str) -> ApplicationRecord:
        return await self.coalescer.submit(
            lambda loaded, now: decisions.capture(loaded, org_seq, account_id, invoice_id, now),
            _invoice(org_seq, account_id, invoice_id),
        )

    async def release(self, org_seq: int, account_id: str, invoice_id: str) -> ApplicationRecord:
        return await self.coalescer.submit(
            lambda loaded, now: decisions.release(loaded, org_seq, account_id, invoice_id, now),
            _invoice(org_seq, account_id, invoice_id),
        )

    async def void(self, org_seq: int, credit_id: str) -> CreditRecord:
        def wants(group: Wants) -> None:
            group.credits.add((org_seq, credit_id))

        return await self.coalescer.submit(
            lambda loaded, now: decisions.void(loaded, org_seq, credit_id, now), wants
        )

    async def burn(
        self, accounts: list[tuple[int, str]], batch: int
    ) -> dict[tuple[int, str], BurnOutcome]:
        """Apply the first `batch` pending usage events of each account (org_seq, account id;
        docs/usage.md), under their locks like every money write. An account another
        transaction holds is left out of the answer: its events wait for the next burn."""

        def wants(group: Wants) -> None:
            group.usage.update(accounts)
            group.usage_batch = max(group.usage_batch, batch)

        # an account's burn costs about what one other write does: a group holds 64 of them,
        # so a group's locks are held briefly and groups of two processes rarely meet
        return await self.coalescer.submit(
            lambda loaded, now: burning.burn_accounts(loaded, accounts, now),
            wants,
            size=len(accounts),
        )

    async def bring_to_today(self, account_seqs: list[int]) -> None:
        """Expire what is due and recount the balances of these accounts (the sweep, and
        reads that find an account behind the day). The coalescer brings every account it
        locks up to today, so locking them is all this write asks."""

        def wants(group: Wants) -> None:
            group.account_seqs.update(account_seqs)

        await self.coalescer.submit(_nothing_more, wants)


def _invoice(org_seq: int, account_id: str, invoice_id: str) -> Callable[[Wants], None]:
    def wants(group: Wants) -> None:
        group.accounts.add((org_seq, account_id))
        group.invoices.add((org_seq, account_id, invoice_id))

    return wants


def _nothing_more(_loaded: Loaded, _now: datetime) -> tuple[None, Changes]:
    return None, Changes()
