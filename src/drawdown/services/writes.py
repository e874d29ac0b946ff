"""Every write that moves money, as the API calls it. One object per process
(`app.state.writes`); the HTTP layer never opens a transaction itself."""

from drawdown.clock import Clock
from drawdown.ledger.records import ApplicationRecord, CreditRecord
from drawdown.ledger.requests import ApplicationRequest, GrantRequest
from drawdown.services import applications, credits, grants
from drawdown.store.database import Database


class Writes:
    def __init__(self, db: Database, clock: Clock) -> None:
        self.db = db
        self.clock = clock

    async def grant(self, org_seq: int, requests: list[GrantRequest]) -> list[CreditRecord]:
        """Grant every request or none; answers in request order."""
        return await self.db.transact(
            lambda conn: grants.grant(conn, org_seq, requests, self.clock)
        )

    async def apply(
        self, org_seq: int, account_id: str, request: ApplicationRequest
    ) -> ApplicationRecord:
        return await self.db.transact(
            lambda conn: applications.apply(conn, org_seq, account_id, request, self.clock)
        )

    async def capture(self, org_seq: int, account_id: str, invoice_id: str) -> ApplicationRecord:
        return await self.db.transact(
            lambda conn: applications.capture(conn, org_seq, account_id, invoice_id, self.clock)
        )

    async def release(self, org_seq: int, account_id: str, invoice_id: str) -> ApplicationRecord:
        return await self.db.transact(
            lambda conn: applications.release(conn, org_seq, account_id, invoice_id, self.clock)
        )

    async def void(self, org_seq: int, credit_id: str) -> CreditRecord:
        return await self.db.transact(
            lambda conn: credits.void_credit(conn, org_seq, credit_id, self.clock)
        )

    async def bring_to_today(self, account_seqs: list[int]) -> None:
        """Expire what is due and recount the balances of these accounts (the sweep, and
        reads that find an account behind the day)."""
        await credits.bring_accounts_to_today(self.db, account_seqs, self.clock)
