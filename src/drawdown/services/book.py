"""The book of one locked account: every change to its credits' money goes through here, so the
ledger lines, the credits' amounts and the account's balance move together.

The book judges "today" by the clock it reads once the account is locked, and never earlier
than the day the account's balance was counted for (`AccountRecord.as_of`): a process whose
clock is behind (a request that began before midnight, a server a second slow) computes as of
the later day, so a balance kept for one day is never changed with an earlier day's arithmetic,
and `lastUpdatedAt` never goes backwards.
"""

from dataclasses import replace
from datetime import date, datetime
from decimal import Decimal

from sqlalchemy.ext.asyncio import AsyncConnection

from drawdown.clock import Clock
from drawdown.errors import Conflict
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
from drawdown.ledger.money import MAX_TOTAL_INTEGER_DIGITS, TotalOverflow, add
from drawdown.ledger.records import AccountRecord, CreditRecord, TransactionRecord
from drawdown.store import ledger as store


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


def book_day(account: AccountRecord, clock_now: datetime) -> date:
    """The day a write to `account` computes as of: the clock's, but never before the day its
    balance was counted for."""
    return max(clock_now.date(), account.as_of)


def add_totals(first: BalanceTotals, second: BalanceTotals) -> BalanceTotals:
    try:
        return first + second
    except TotalOverflow:
        raise Conflict(
            f"the account's total would exceed {MAX_TOTAL_INTEGER_DIGITS} digits before the "
            "decimal point; nothing was changed"
        ) from None


class Book:
    def __init__(self, conn: AsyncConnection, account: AccountRecord, clock_now: datetime) -> None:
        self.conn = conn
        self.account = account
        self.now = clock_now
        self.today = book_day(account, clock_now)
        self._dirty = False
        # Writes wait here until save(), which sends them together (one statement on PostgreSQL).
        self._changed: dict[int, CreditRecord] = {}
        self._lines: list[tuple[int, TransactionRecord]] = []

    @classmethod
    async def open(
        cls, conn: AsyncConnection, account: AccountRecord, clock: Clock, *, recount: bool = False
    ) -> "Book":
        """A book for an account already locked in this transaction, brought up to today (the
        clock is read now, under the lock). With `recount`, the balance is counted again from
        the credits even when no day boundary passed."""
        book = cls(conn, account, clock.now())
        await book.bring_to_today(force=recount)
        return book

    def _share(
        self, credit: CreditRecord, status: CreditStatus, amounts: CreditAmounts
    ) -> BalanceTotals:
        return contribution(
            status, amounts, credit.effective_from, credit.effective_until, self.today
        )

    async def bring_to_today(self, *, force: bool = False) -> None:
        """Expire what is past its last day and recount the balance, if a day boundary passed."""
        through = self.account.valid_through
        if not force and (through is None or self.today <= through):
            return
        totals = NO_TOTALS
        valid_through = None
        for credit in await store.active_credits(self.conn, self.account.seq):
            if is_past_until(credit.effective_until, self.today):
                self.expire(credit, recount=False)
                continue
            totals = add_totals(totals, self._share(credit, credit.status, credit.amounts))
            valid_through = earliest(
                valid_through,
                last_stable_day(
                    credit.status, credit.effective_from, credit.effective_until, self.today
                ),
            )
        self.account.totals = totals
        self.account.valid_through = valid_through
        self._touch_balance()
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
                self.account.totals = add_totals(self.account.totals, after) - before
                self._touch_balance()

    def added(self, credit: CreditRecord) -> None:
        """Count a credit just inserted (its CREDITED line already written)."""
        if is_past_until(credit.effective_until, self.today):
            self.expire(credit)
            return
        self.account.totals = add_totals(
            self.account.totals, self._share(credit, credit.status, credit.amounts)
        )
        self.account.valid_through = earliest(
            self.account.valid_through,
            last_stable_day(
                credit.status, credit.effective_from, credit.effective_until, self.today
            ),
        )
        self._touch_balance()

    def _touch_balance(self) -> None:
        """The totals now hold as of `today`; `lastUpdatedAt` never goes backwards."""
        self.account.as_of = self.today
        self.account.balance_updated_at = max(self.now, self.account.balance_updated_at)
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
                credit.amounts.expired = add(credit.amounts.expired, available)
            else:
                credit.amounts.voided = add(credit.amounts.voided, available)
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
