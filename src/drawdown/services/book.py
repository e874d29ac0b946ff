"""The book of one locked account: every change to its credits' money goes through here, so the
ledger lines, the credits' amounts and the account's balance move together."""

from dataclasses import replace
from datetime import datetime
from decimal import Decimal

from sqlalchemy.ext.asyncio import AsyncConnection

from drawdown.ledger.balance import (
    NO_TOTALS,
    BalanceTotals,
    contribution,
    earliest,
    last_stable_day,
)
from drawdown.ledger.credit import (
    CreditAmounts,
    CreditStatus,
    TransactionType,
    is_past_until,
    status_after_change,
)
from drawdown.ledger.ids import TRANSACTION_PREFIX, new_id
from drawdown.store import ledger as store
from drawdown.store.records import AccountRecord, CreditRecord, TransactionRecord


def ledger_line(
    credit: CreditRecord,
    kind: TransactionType,
    amount: Decimal,
    at: datetime,
    invoice_id: str | None = None,
    entity_id: str | None = None,
) -> TransactionRecord:
    """A new ledger line on `credit`, with a fresh id."""
    return TransactionRecord(
        id=new_id(TRANSACTION_PREFIX),
        credit_id=credit.id,
        transaction_type=kind,
        amount=amount,
        created_at=at,
        invoice_id=invoice_id,
        entity_id=entity_id,
    )


class Book:
    def __init__(self, conn: AsyncConnection, account: AccountRecord, now: datetime) -> None:
        self.conn = conn
        self.account = account
        self.now = now
        self.today = now.date()
        self._dirty = False
        # Writes wait here until save(), which sends them together (one statement on PostgreSQL).
        self._changed: dict[int, CreditRecord] = {}
        self._lines: list[tuple[int, TransactionRecord]] = []

    @classmethod
    async def open(cls, conn: AsyncConnection, account: AccountRecord, now: datetime) -> "Book":
        """A book for an account already locked in this transaction, brought up to today."""
        book = cls(conn, account, now)
        await book.bring_to_today()
        return book

    def _share(
        self, credit: CreditRecord, status: CreditStatus, amounts: CreditAmounts
    ) -> BalanceTotals:
        return contribution(
            status, amounts, credit.effective_from, credit.effective_until, self.today
        )

    async def bring_to_today(self) -> None:
        """Expire what is past its last day and recount the balance, if a day boundary passed."""
        through = self.account.valid_through
        if through is None or self.today <= through:
            return
        totals = NO_TOTALS
        valid_through = None
        for credit in await store.active_credits(self.conn, self.account.seq):
            if is_past_until(credit.effective_until, self.today):
                self.expire(credit, recount=False)
                continue
            totals += self._share(credit, credit.status, credit.amounts)
            valid_through = earliest(
                valid_through,
                last_stable_day(
                    credit.status, credit.effective_from, credit.effective_until, self.today
                ),
            )
        self.account.totals = totals
        self.account.valid_through = valid_through
        self.account.balance_updated_at = self.now
        self._dirty = True
        await self.save()  # what follows in the transaction may read these credits again

    def line(
        self,
        credit: CreditRecord,
        kind: TransactionType,
        amount: Decimal,
        invoice_id: str | None = None,
        entity_id: str | None = None,
    ) -> TransactionRecord:
        return ledger_line(credit, kind, amount, self.now, invoice_id, entity_id)

    def record(
        self,
        credit: CreditRecord,
        before_status: CreditStatus,
        before_amounts: CreditAmounts,
        lines: list[TransactionRecord],
        *,
        recount: bool = True,
    ) -> None:
        """Record a change already made to `credit`, its ledger lines and the balance delta;
        they are written by save()."""
        credit.status = status_after_change(credit.status, credit.amounts)
        credit.updated_at = self.now
        self._changed[credit.seq] = credit
        self._lines += [(credit.seq, line) for line in lines]
        if recount:
            before = self._share(credit, before_status, before_amounts)
            after = self._share(credit, credit.status, credit.amounts)
            if before != after:
                self.account.totals = self.account.totals + after - before
                self.account.balance_updated_at = self.now
                self._dirty = True

    def added(self, credit: CreditRecord) -> None:
        """Count a credit just inserted (its CREDITED line already written)."""
        if is_past_until(credit.effective_until, self.today):
            self.expire(credit)
            return
        self.account.totals += self._share(credit, credit.status, credit.amounts)
        self.account.valid_through = earliest(
            self.account.valid_through,
            last_stable_day(
                credit.status, credit.effective_from, credit.effective_until, self.today
            ),
        )
        self.account.balance_updated_at = self.now
        self._dirty = True

    def expire(self, credit: CreditRecord, *, recount: bool = True) -> None:
        self._close(credit, CreditStatus.EXPIRED, TransactionType.EXPIRED, recount)

    def void(self, credit: CreditRecord) -> None:
        self._close(credit, CreditStatus.VOIDED, TransactionType.VOIDED, True)

    def _close(
        self, credit: CreditRecord, status: CreditStatus, kind: TransactionType, recount: bool
    ) -> None:
        """Move what is available into one closing line; what is held stays held."""
        before_status, before_amounts = credit.status, replace(credit.amounts)
        available = credit.amounts.available
        lines = []
        if available > 0:
            if kind is TransactionType.EXPIRED:
                credit.amounts.expired += available
            else:
                credit.amounts.voided += available
            lines.append(self.line(credit, kind, available))
        credit.status = status
        self.record(credit, before_status, before_amounts, lines, recount=recount)

    async def save(self) -> None:
        """Write the recorded changes: credits, ledger lines and the balance, together."""
        await store.write_book(
            self.conn,
            list(self._changed.values()),
            self._lines,
            self.account if self._dirty else None,
        )
        self._changed, self._lines, self._dirty = {}, [], False
