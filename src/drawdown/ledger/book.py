"""The book of one locked account, as pure code: every change to its credits' money goes
through here, so the ledger lines, the credits' amounts and the account's balance move together.

The book judges "today" by the clock read once the account is locked, and never earlier than
the day the account's balance was counted for (`AccountRecord.as_of`): a process whose clock is
behind (a request that began before midnight, a server a second slow) computes as of the later
day, so a balance kept for one day is never changed with an earlier day's arithmetic, and
`lastUpdatedAt` never goes backwards.

A book works on a copy of its account and changes only the credit records it is handed, which
its caller copies first (`ledger.draft.Draft.edit`); the lines it writes wait in `lines`.
"""

from collections.abc import Callable, Iterable
from datetime import date, datetime
from decimal import Decimal

from drawdown.errors import Conflict
from drawdown.ledger.balance import (
    NO_TOTALS,
    BalanceTotals,
    contribution,
    earliest,
    last_stable_day,
)
from drawdown.ledger.copying import copied
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


def book_day(account: AccountRecord, now: datetime) -> date:
    """The day a write to `account` computes as of: the clock's, but never before the day its
    balance was counted for."""
    return max(now.date(), account.as_of)


def needs_bringing(account: AccountRecord, now: datetime) -> bool:
    """Whether the kept balance no longer holds on the book day (a credit has changed class
    since it was counted): its credits must be expired and counted again first."""
    through = account.valid_through
    return through is not None and book_day(account, now) > through


def add_totals(first: BalanceTotals, second: BalanceTotals) -> BalanceTotals:
    try:
        return first + second
    except TotalOverflow:
        raise Conflict(
            f"the account's total would exceed {MAX_TOTAL_INTEGER_DIGITS} digits before the "
            "decimal point; nothing was changed"
        ) from None


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
    def __init__(self, account: AccountRecord, now: datetime) -> None:
        self.account = copied(account)
        self.now = now
        self.today = book_day(account, now)
        # whether the account's kept balance must be written
        self.dirty = False
        # lines written since the caller last took them (`take_lines`)
        self.lines: list[TransactionRecord] = []

    def take_lines(self) -> list[TransactionRecord]:
        lines, self.lines = self.lines, []
        return lines

    def share(
        self, credit: CreditRecord, status: CreditStatus, amounts: CreditAmounts
    ) -> BalanceTotals:
        return contribution(
            status, amounts, credit.effective_from, credit.effective_until, self.today
        )

    def bring_to_today(
        self,
        active: Iterable[CreditRecord],
        edit: Callable[[CreditRecord], CreditRecord],
        *,
        force: bool = False,
    ) -> None:
        """Expire what is past its last day and recount the balance from the account's
        `active` credits, if a day boundary passed (or always, with `force`). `edit` gives the
        copy of a credit to change."""
        through = self.account.valid_through
        if not force and (through is None or self.today <= through):
            return
        totals = NO_TOTALS
        valid_through = None
        for credit in active:
            if is_past_until(credit.effective_until, self.today):
                self.expire(edit(credit), recount=False)
                continue
            totals = add_totals(totals, self.share(credit, credit.status, credit.amounts))
            valid_through = earliest(
                valid_through,
                last_stable_day(
                    credit.status, credit.effective_from, credit.effective_until, self.today
                ),
            )
        self.account.totals = totals
        self.account.valid_through = valid_through
        self._touch_balance()

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
        """Record a change already made to `credit` (a copy): its status, its ledger lines and
        the balance's change."""
        credit.status = status_after_change(credit.status, credit.amounts)
        credit.updated_at = self.now
        self.lines += lines
        if recount:
            before = self.share(credit, before_status, before_amounts)
            after = self.share(credit, credit.status, credit.amounts)
            if before != after:
                self.account.totals = add_totals(self.account.totals, after) - before
                self._touch_balance()

    def added(self, credit: CreditRecord) -> None:
        """Count a credit just granted (its CREDITED line already written); one past its last
        day expires at once."""
        if is_past_until(credit.effective_until, self.today):
            self.expire(credit)
            return
        self.account.totals = add_totals(
            self.account.totals, self.share(credit, credit.status, credit.amounts)
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
        self.dirty = True

    def expire(self, credit: CreditRecord, *, recount: bool = True) -> None:
        self._close(credit, CreditStatus.EXPIRED, TransactionType.EXPIRED, recount)

    def void(self, credit: CreditRecord) -> None:
        self._close(credit, CreditStatus.VOIDED, TransactionType.VOIDED, True)

    def _close(
        self, credit: CreditRecord, status: CreditStatus, kind: TransactionType, recount: bool
    ) -> None:
        """Move what is available into one closing line; what is held stays held."""
        before_status, before_amounts = credit.status, copied(credit.amounts)
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
