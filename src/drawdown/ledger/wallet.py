"""The wallet (docs/wallet.md): one prepaid balance per account, paid from after the credits.

A wallet keeps three exact totals, `balance = topped_up - consumed - held`, and the number of
its last entry. Every change writes entries (the wallet's append-only ledger), each carrying
the balance right after it, so the stored rows in order explain every total:

    running = Σ CREDITED - Σ DEBITED (any status) + Σ RELEASED rows
    closing_balance of each row = running after it

A hold is one DEBITED entry ON_HOLD; capture makes it COMPLETED; release marks it RELEASED (it
leaves the list) and writes a RELEASED row that gives the amount back.
"""

import hashlib
import json
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal
from enum import StrEnum

from drawdown.errors import Conflict
from drawdown.ledger.copying import copied
from drawdown.ledger.ids import new_id
from drawdown.ledger.money import MAX_TOTAL_INTEGER_DIGITS, ZERO, TotalOverflow, add, format_amount
from drawdown.ledger.money import sub as subtract

WALLET_PREFIX = "wallet"
ENTRY_PREFIX = "wtxn"


class WalletStatus(StrEnum):
    ACTIVE = "ACTIVE"
    INACTIVE = "INACTIVE"


class EntryType(StrEnum):
    CREDITED = "CREDITED"
    DEBITED = "DEBITED"
    RELEASED = "RELEASED"  # a released hold given back; never listed


class EntryStatus(StrEnum):
    COMPLETED = "COMPLETED"
    ON_HOLD = "ON_HOLD"
    RELEASED = "RELEASED"  # a hold given back; never listed


@dataclass
class WalletRecord:
    seq: int  # 0 until saved
    org_seq: int
    account_seq: int
    id: str
    account_id: str
    customer_id: str
    currency: str
    status: WalletStatus
    effective_from: datetime
    topped_up: Decimal
    consumed: Decimal
    held: Decimal
    entries: int  # the number of its last entry
    created_at: datetime
    updated_at: datetime

    @property
    def balance(self) -> Decimal:
        return subtract(self.topped_up, add(self.consumed, self.held))

    def pays_on(self, day: date) -> bool:
        """Whether the wallet pays for what is owed on `day` (UTC): ACTIVE, and in effect."""
        return self.status is WalletStatus.ACTIVE and self.effective_from.date() <= day


@dataclass(frozen=True)
class WalletEntryRecord:
    id: str
    wallet_id: str
    wallet_seq: int  # 0 while its wallet is not saved yet
    account_seq: int
    number: int
    entry_type: EntryType
    status: EntryStatus
    amount: Decimal
    closing_balance: Decimal
    created_at: datetime
    updated_at: datetime
    entity_id: str | None = None
    invoice_id: str | None = None


@dataclass(frozen=True)
class EntryChange:
    """An existing ON_HOLD entry's new status (the only change an entry ever gets)."""

    entry_id: str
    account_seq: int
    status: EntryStatus
    updated_at: datetime


@dataclass(frozen=True)
class TopupKey:
    """An `Idempotency-Key` of a top-up, per organization."""

    org_seq: int
    key: str
    account_seq: int
    request_hash: str
    entry_id: str
    created_at: datetime


def topup_fingerprint(account_id: str, amount: Decimal) -> str:
    """What makes two top-ups with one key the same request."""
    canonical = json.dumps([account_id, format_amount(amount)], separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()


def new_wallet(
    org_seq: int, account_seq: int, account_id: str, customer_id: str, currency: str, now: datetime
) -> WalletRecord:
    """An account's wallet as its first top-up makes it: ACTIVE, in effect from now, empty."""
    return WalletRecord(
        seq=0,
        org_seq=org_seq,
        account_seq=account_seq,
        id=new_id(WALLET_PREFIX),
        account_id=account_id,
        customer_id=customer_id,
        currency=currency,
        status=WalletStatus.ACTIVE,
        effective_from=now,
        topped_up=ZERO,
        consumed=ZERO,
        held=ZERO,
        entries=0,
        created_at=now,
        updated_at=now,
    )


class WalletBook:
    """Changes to one wallet by one decision: a copy of the wallet, the entries written and the
    entries whose status changed. Nothing ever goes negative; a total past 28 digits is a 409."""

    def __init__(self, wallet: WalletRecord, now: datetime) -> None:
        self.wallet = copied(wallet)
        self.now = now
        self.entries: list[WalletEntryRecord] = []
        self.changes: list[EntryChange] = []
        self.dirty = False

    @property
    def balance(self) -> Decimal:
        return self.wallet.balance

    def top_up(self, amount: Decimal) -> WalletEntryRecord:
        self.wallet.topped_up = _total(add, self.wallet.topped_up, amount)
        return self._write(EntryType.CREDITED, EntryStatus.COMPLETED, amount)

    def hold(self, amount: Decimal, invoice_id: str) -> WalletEntryRecord:
        """Reserve `amount` (at most the balance) for a HELD invoice: one ON_HOLD entry."""
        self._check_covered(amount)
        self.wallet.held = _total(add, self.wallet.held, amount)
        return self._write(
            EntryType.DEBITED, EntryStatus.ON_HOLD, amount, entity_id=invoice_id, invoice=invoice_id
        )

    def debit(
        self,
        amount: Decimal,
        entity_id: str,
        invoice_id: str | None = None,
        *,
        entry_id: str | None = None,
    ) -> WalletEntryRecord:
        """Spend `amount` (at most the balance) at once: one COMPLETED entry (an invoice's
        DEBIT, or a batch of usage on one meter, without an invoice, under the id its events
        already name)."""
        self._check_covered(amount)
        self.wallet.consumed = _total(add, self.wallet.consumed, amount)
        return self._write(
            EntryType.DEBITED,
            EntryStatus.COMPLETED,
            amount,
            entity_id=entity_id,
            invoice=invoice_id,
            entry_id=entry_id,
        )

    def capture(self, entry_id: str, amount: Decimal) -> None:
        """A hold becomes spent: its entry COMPLETED; the balance does not move."""
        self.wallet.held = _total(subtract, self.wallet.held, amount)
        self.wallet.consumed = _total(add, self.wallet.consumed, amount)
        self._change(entry_id, EntryStatus.COMPLETED)

    def release(self, entry_id: str, amount: Decimal, invoice_id: str) -> None:
        """A hold given back: its entry RELEASED, and a RELEASED row returns the amount."""
        self.wallet.held = _total(subtract, self.wallet.held, amount)
        self._change(entry_id, EntryStatus.RELEASED)
        self._write(
            EntryType.RELEASED,
            EntryStatus.COMPLETED,
            amount,
            entity_id=invoice_id,
            invoice=invoice_id,
        )

    def set_status(self, status: WalletStatus) -> None:
        if status is not self.wallet.status:
            self.wallet.status = status
            self._touch()

    def set_effective_from(self, effective_from: datetime) -> None:
        if effective_from != self.wallet.effective_from:
            self.wallet.effective_from = effective_from
            self._touch()

    def _check_covered(self, amount: Decimal) -> None:
        if amount <= 0 or amount > self.balance:
            raise AssertionError(f"the wallet cannot pay {amount}: its balance is {self.balance}")

    def _write(
        self,
        kind: EntryType,
        status: EntryStatus,
        amount: Decimal,
        *,
        entity_id: str | None = None,
        invoice: str | None = None,
        entry_id: str | None = None,
    ) -> WalletEntryRecord:
        self.wallet.entries += 1
        entry = WalletEntryRecord(
            id=entry_id or new_id(ENTRY_PREFIX),
            wallet_id=self.wallet.id,
            wallet_seq=self.wallet.seq,
            account_seq=self.wallet.account_seq,
            number=self.wallet.entries,
            entry_type=kind,
            status=status,
            amount=amount,
            closing_balance=self.balance,
            created_at=self.now,
            updated_at=self.now,
            entity_id=entity_id,
            invoice_id=invoice,
        )
        self.entries.append(entry)
        self._touch()
        return entry

    def _change(self, entry_id: str, status: EntryStatus) -> None:
        self.changes.append(EntryChange(entry_id, self.wallet.account_seq, status, self.now))
        self._touch()

    def _touch(self) -> None:
        self.wallet.updated_at = max(self.now, self.wallet.updated_at)
        self.dirty = True


def _total(
    operation: Callable[[Decimal, Decimal], Decimal], first: Decimal, second: Decimal
) -> Decimal:
    try:
        result = operation(first, second)
    except TotalOverflow:
        raise Conflict(
            f"the wallet's total would exceed {MAX_TOTAL_INTEGER_DIGITS} digits before the "
            "decimal point; nothing was changed"
        ) from None
    if result < 0:
        raise AssertionError("a wallet total would go negative")
    return result
