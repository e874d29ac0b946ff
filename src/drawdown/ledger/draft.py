"""One decision's working copy of what its group loaded. A record is copied the first time the
decision changes it, so `Loaded` stays exactly as it was (a decision that raises leaves no
trace), and `changes()` gives what the decision wrote."""

from datetime import datetime

from drawdown.errors import NotFound
from drawdown.ledger.book import Book, ledger_line, needs_bringing
from drawdown.ledger.changes import Changes, Loaded
from drawdown.ledger.copying import copied
from drawdown.ledger.credit import CreditStatus, TransactionType
from drawdown.ledger.happenings import happenings
from drawdown.ledger.records import (
    AccountRecord,
    ApplicationRecord,
    CreditRecord,
    TransactionRecord,
)
from drawdown.ledger.wallet import TopupKey, WalletBook, new_wallet


class Draft:
    def __init__(self, loaded: Loaded, now: datetime) -> None:
        self.loaded = loaded
        self.now = now
        self.books: dict[int, Book] = {}
        self.new_credits: dict[str, CreditRecord] = {}
        # copies of credits that existed before this decision, as it changed them
        self.edited: dict[str, CreditRecord] = {}
        self.lines: list[TransactionRecord] = []
        self.applications: dict[tuple[int, str], ApplicationRecord] = {}
        self.wallets: dict[int, WalletBook] = {}
        self.topup_keys: list[TopupKey] = []
        self.profiles: dict[int, AccountRecord] = {}

    def account_seq(self, org_seq: int, account_id: str) -> int:
        """The seq of an account a caller names; an archived one reads as unknown."""
        seq = self.loaded.account_ids.get((org_seq, account_id))
        if seq is None or self.loaded.accounts[seq].archived_at is not None:
            raise NotFound(f"account '{account_id}' was not found")
        return seq

    def wallet(self, account_seq: int) -> WalletBook | None:
        """The account's wallet as this decision changes it, or None if it has none."""
        book = self.wallets.get(account_seq)
        if book is None:
            found = self.loaded.wallets.get(account_seq)
            if found is None:
                return None
            book = self.wallets[account_seq] = WalletBook(found, self.now)
        return book

    def open_wallet(self, account_seq: int) -> WalletBook:
        """The account's wallet, made now (ACTIVE, empty) if it has none yet."""
        book = self.wallet(account_seq)
        if book is None:
            account = self.loaded.accounts[account_seq]
            made = new_wallet(
                account.org_seq,
                account.seq,
                account.id,
                account.customer_id,
                account.invoice_currency,
                self.now,
            )
            book = self.wallets[account_seq] = WalletBook(made, self.now)
            book.dirty = True
        return book

    def book(self, account_seq: int, *, recount: bool = False) -> Book:
        """The account's book, brought up to its book day when a day boundary passed (or
        counted again, with `recount`): what a write does first, once it holds the lock."""
        book = self.books.get(account_seq)
        if book is None:
            book = Book(self.loaded.accounts[account_seq], self.now)
            if recount or needs_bringing(book.account, self.now):
                book.bring_to_today(self._active(account_seq), self.edit, force=recount)
                self.lines += book.take_lines()
            self.books[account_seq] = book
        return book

    def _active(self, account_seq: int) -> list[CreditRecord]:
        """The account's ACTIVE credits as they stand now: those loaded as active (in seq
        order), then any granted earlier in the group."""
        listed = self.loaded.active.get(account_seq)
        if listed is None:
            raise LookupError(
                f"account {account_seq} must be brought up to date, but its active credits "
                "were not loaded (Loaded.active)"
            )
        ids = list(listed)
        seen = set(ids)
        ids += [
            credit.id
            for credit in self.loaded.credits.values()
            if credit.account_seq == account_seq and credit.id not in seen
        ]
        current = (self.credit(credit_id) for credit_id in ids)
        return [c for c in current if c is not None and c.status is CreditStatus.ACTIVE]

    def credit(self, credit_id: str) -> CreditRecord | None:
        """A credit as this decision sees it now (read only: change it through `edit`)."""
        for source in (self.new_credits, self.edited, self.loaded.credits):
            if credit_id in source:
                return source[credit_id]
        return None

    def edit(self, credit: CreditRecord) -> CreditRecord:
        """The decision's own copy of `credit`, to change."""
        if credit.id in self.new_credits:
            return self.new_credits[credit.id]
        if credit.id not in self.edited:
            twin = self.edited[credit.id] = copied(credit)
            twin.amounts = copied(credit.amounts)
        return self.edited[credit.id]

    def credit_by_key(self, org_seq: int, key: str) -> CreditRecord | None:
        credit_id = self.loaded.by_key.get((org_seq, key))
        if credit_id is None:
            return None
        credit = self.credit(credit_id)
        # a key found without its credit would grant the same ask twice
        assert credit is not None, f"credit {credit_id} of key '{key}' was not loaded"
        return credit

    def grant(self, credit: CreditRecord) -> None:
        """A new credit and its CREDITED line."""
        self.new_credits[credit.id] = credit
        self.lines.append(
            ledger_line(credit, TransactionType.CREDITED, credit.amounts.credit_amount, self.now)
        )

    def changes(self) -> Changes:
        """What the decision wrote, with the events it causes (ledger/happenings.py)."""
        lines = list(self.lines)
        for book in self.books.values():
            lines += book.lines
        wallets = [book for book in self.wallets.values() if book.dirty]
        changes = Changes(
            new_credits=list(self.new_credits.values()),
            credits=dict(self.edited),
            lines=lines,
            accounts={seq: book.account for seq, book in self.books.items() if book.dirty},
            applications=dict(self.applications),
            wallets={book.wallet.account_seq: book.wallet for book in wallets},
            wallet_entries=[entry for book in wallets for entry in book.entries],
            entry_changes={change.entry_id: change for book in wallets for change in book.changes},
            topup_keys=list(self.topup_keys),
            profiles=dict(self.profiles),
        )
        changes.outbox, changes.alert_marks = happenings(self.loaded, changes, self.now)
        return changes
