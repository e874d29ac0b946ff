"""A tiny in-memory store for the decisions' tests: it serves `Loaded` the way a store must
(copies of what it holds, candidates in drawdown order, the first few only) and applies
`Changes`. The candidate order is computed here from credits.md, not with ledger.allocation.

`run_group` plays the coalescer: one `Loaded` for a group of writes, each decided in turn
against it (`Loaded.apply`), more candidates loaded when a decision asks, one save."""

import copy
import itertools
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any

from drawdown.errors import DrawdownError
from drawdown.ledger import decisions
from drawdown.ledger.balance import NO_TOTALS, BalanceTotals
from drawdown.ledger.changes import Changes, Loaded, NeedCandidates
from drawdown.ledger.credit import CreditStatus
from drawdown.ledger.records import (
    AccountRecord,
    ApplicationRecord,
    CreditRecord,
    TransactionRecord,
)
from drawdown.ledger.requests import ApplicationRequest, GrantRequest
from drawdown.ledger.wallet import (
    EntryStatus,
    TopupKey,
    WalletEntryRecord,
    WalletRecord,
    WalletStatus,
)

EPOCH = datetime(2026, 1, 1, tzinfo=UTC)
EPOCH_DAY = EPOCH.date()


def drawdown_order(credit: CreditRecord) -> tuple[Any, ...]:
    """credits.md: priority, soonest effectiveUntil (none last), oldest effectiveFrom, oldest
    createdAt, then id (byte order)."""
    until = credit.effective_until
    return (
        credit.priority,
        until is None,
        until or date.max,
        credit.effective_from,
        credit.created_at,
        credit.id.encode(),
    )


@dataclass
class MemoryLedger:
    accounts: dict[int, AccountRecord] = field(default_factory=dict)
    credits: dict[str, CreditRecord] = field(default_factory=dict)
    lines: dict[str, list[TransactionRecord]] = field(default_factory=dict)
    applications: dict[tuple[int, str], ApplicationRecord] = field(default_factory=dict)
    # wallets by account seq, their entries by id (in the order written), top-up keys
    wallets: dict[int, WalletRecord] = field(default_factory=dict)
    entries: dict[str, WalletEntryRecord] = field(default_factory=dict)
    topup_keys: dict[tuple[int, str], TopupKey] = field(default_factory=dict)
    # how many candidates a load gives first, and how many more each time a decision asks
    first: int = 8
    more: int = 8
    _seqs: Any = field(default_factory=lambda: itertools.count(1))

    def add_account(
        self,
        org_seq: int,
        account_id: str,
        *,
        totals: BalanceTotals = NO_TOTALS,
        as_of: date = EPOCH_DAY,
        valid_through: date | None = None,
        updated_at: datetime = EPOCH,
    ) -> AccountRecord:
        seq = next(self._seqs)
        account = AccountRecord(
            seq=seq,
            org_seq=org_seq,
            id=account_id,
            customer_seq=seq,
            customer_id=f"cust-{account_id}",
            name=f"Account {account_id}",
            invoice_currency="USD",
            status="ACTIVE",
            details={},
            created_at=EPOCH,
            updated_at=EPOCH,
            totals=totals,
            as_of=as_of,
            valid_through=valid_through,
            balance_updated_at=updated_at,
        )
        self.accounts[seq] = account
        return account

    def candidates(self, account_seq: int, as_of: date) -> list[CreditRecord]:
        """The account's ACTIVE credits in effect on `as_of`, in drawdown order, as stored."""
        found = [
            c
            for c in self.credits.values()
            if c.account_seq == account_seq
            and c.status is CreditStatus.ACTIVE
            and c.effective_from <= as_of
            and (c.effective_until is None or as_of <= c.effective_until)
        ]
        return sorted(found, key=drawdown_order)

    # -- loading -------------------------------------------------------------------------

    def load(
        self,
        *,
        today: date,
        accounts: Iterable[tuple[int, str]] = (),
        credits: Iterable[tuple[int, str]] = (),
        keys: Iterable[tuple[int, str]] = (),
        invoices: Iterable[tuple[int, str, str]] = (),
        candidates: Iterable[tuple[int, str, date]] = (),
    ) -> Loaded:
        """What a store's `load(Wants)` gives, as copies."""
        loaded = Loaded()
        by_id = {(a.org_seq, a.id): a.seq for a in self.accounts.values()}
        locked = {by_id[key] for key in accounts if key in by_id}
        for org_seq, credit_id in credits:
            credit = self.credits.get(credit_id)
            if credit is not None and credit.org_seq == org_seq:
                locked.add(credit.account_seq)
                self._give_credit(loaded, credit)
        for seq in sorted(locked):
            account = self.accounts[seq]
            loaded.accounts[seq] = copy.deepcopy(account)
            loaded.account_ids[(account.org_seq, account.id)] = seq
            through = account.valid_through
            if account.as_of > today or (through is not None and through < today):
                self.load_active(loaded, seq)
            if seq in self.wallets:
                loaded.wallets[seq] = copy.deepcopy(self.wallets[seq])
        loaded.topup_keys = dict(self.topup_keys)
        for org_seq, key in keys:
            for credit in self.credits.values():
                if credit.org_seq == org_seq and credit.idempotency_key == key:
                    loaded.by_key[(org_seq, key)] = credit.id
                    self._give_credit(loaded, credit)
        for org_seq, account_id, invoice_id in invoices:
            seq = by_id.get((org_seq, account_id))
            application = self.applications.get((seq, invoice_id)) if seq else None
            if seq is not None and application is not None:
                loaded.applications[(seq, invoice_id)] = copy.deepcopy(application)
                for line in application.lines:
                    for allocation in line.allocations:
                        self._give_credit(loaded, self.credits[allocation.credit_id])
        for org_seq, account_id, as_of in candidates:
            seq = by_id.get((org_seq, account_id))
            if seq is not None:
                loaded.candidates[(seq, as_of)] = []
                self.load_candidates(loaded, seq, as_of, self.first)
        return loaded

    def _give_credit(self, loaded: Loaded, credit: CreditRecord) -> None:
        if credit.id not in loaded.credits:
            loaded.credits[credit.id] = copy.deepcopy(credit)

    def load_active(self, loaded: Loaded, account_seq: int) -> None:
        active = sorted(
            (
                c
                for c in self.credits.values()
                if c.account_seq == account_seq and c.status is CreditStatus.ACTIVE
            ),
            key=lambda c: c.seq,
        )
        for credit in active:
            self._give_credit(loaded, credit)
        loaded.active[account_seq] = [c.id for c in active]

    def load_candidates(self, loaded: Loaded, account_seq: int, as_of: date, limit: int) -> None:
        """The next `limit` candidates after those listed (what `WriteTransaction.candidates`
        gives), as stored: the group's own changes are not saved yet."""
        listed = loaded.candidates.setdefault((account_seq, as_of), [])
        every = self.candidates(account_seq, as_of)
        batch = every[len(listed) : len(listed) + limit]
        for credit in batch:
            self._give_credit(loaded, credit)
        listed += [c.id for c in batch]
        loaded.complete[(account_seq, as_of)] = len(batch) < limit

    # -- saving --------------------------------------------------------------------------

    def save(self, changes: Changes) -> None:
        for credit in changes.new_credits:
            assert credit.seq == 0 and credit.id not in self.credits
            self.credits[credit.id] = replace(copy.deepcopy(credit), seq=next(self._seqs))
            self.lines[credit.id] = []
        for credit_id, credit in changes.credits.items():
            stored = self.credits[credit_id]
            assert credit.seq == stored.seq and credit.created_at == stored.created_at
            self.credits[credit_id] = copy.deepcopy(credit)
        for line in changes.lines:
            assert line.amount > 0
            self.lines[line.credit_id].append(line)
        for seq, account in changes.accounts.items():
            before = self.accounts[seq]
            assert account.as_of >= before.as_of, "a balance counted for an earlier day"
            assert account.balance_updated_at >= before.balance_updated_at, "lastUpdatedAt"
            self.accounts[seq] = copy.deepcopy(account)
        for key, application in changes.applications.items():
            stored_app = self.applications.get(key)
            saved = copy.deepcopy(application)
            if stored_app is None:
                assert application.seq == 0
                saved.seq = next(self._seqs)
            else:
                assert application.seq == stored_app.seq
            self.applications[key] = saved
        for seq, wallet in changes.wallets.items():
            saved_wallet = copy.deepcopy(wallet)
            if seq not in self.wallets:
                assert wallet.seq == 0
                saved_wallet.seq = next(self._seqs)
            else:
                assert wallet.seq == self.wallets[seq].seq
            self.wallets[seq] = saved_wallet
        for entry in changes.wallet_entries:
            assert entry.id not in self.entries and entry.amount > 0
            self.entries[entry.id] = entry
        for entry_id, change in changes.entry_changes.items():
            assert self.entries[entry_id].status is EntryStatus.ON_HOLD
            self.entries[entry_id] = replace(self.entries[entry_id], status=change.status)
        for used in changes.topup_keys:
            assert (used.org_seq, used.key) not in self.topup_keys
            self.topup_keys[(used.org_seq, used.key)] = used
        for seq, profile in changes.profiles.items():
            self.accounts[seq] = copy.deepcopy(profile)


# -- the coalescer, as the tests play it ---------------------------------------------------


@dataclass(frozen=True)
class Grant:
    requests: tuple[GrantRequest, ...]


@dataclass(frozen=True)
class Apply:
    account_id: str
    request: ApplicationRequest


@dataclass(frozen=True)
class Settle:
    action: str  # "capture" or "release"
    account_id: str
    invoice_id: str


@dataclass(frozen=True)
class Void:
    credit_id: str


@dataclass(frozen=True)
class TopUp:
    account_id: str
    amount: Decimal
    key: str | None = None


@dataclass(frozen=True)
class SetWallet:
    account_id: str
    status: WalletStatus | None = None
    effective_from: datetime | None = None


Write = Grant | Apply | Settle | Void | TopUp | SetWallet
Outcome = Any  # list[CreditRecord] | ApplicationRecord | CreditRecord | DrawdownError


def decide(loaded: Loaded, org_seq: int, write: Write, now: datetime) -> tuple[Any, Changes]:
    if isinstance(write, Grant):
        return decisions.grant(loaded, org_seq, list(write.requests), now)
    if isinstance(write, Apply):
        return decisions.apply(loaded, org_seq, write.account_id, write.request, now)
    if isinstance(write, Settle):
        settle: Callable[..., tuple[ApplicationRecord, Changes]] = (
            decisions.capture if write.action == "capture" else decisions.release
        )
        return settle(loaded, org_seq, write.account_id, write.invoice_id, now)
    if isinstance(write, TopUp):
        return decisions.top_up(loaded, org_seq, write.account_id, write.amount, write.key, now)
    if isinstance(write, SetWallet):
        return decisions.update_wallet(
            loaded, org_seq, write.account_id, write.status, write.effective_from, now
        )
    return decisions.void(loaded, org_seq, write.credit_id, now)


def wants_of(org_seq: int, writes: list[Write], today: date) -> dict[str, set[Any]]:
    wants: dict[str, set[Any]] = {
        "accounts": set(),
        "credits": set(),
        "keys": set(),
        "invoices": set(),
        "candidates": set(),
    }
    for write in writes:
        if isinstance(write, Grant):
            for request in write.requests:
                wants["accounts"].add((org_seq, request.account_id))
                if request.idempotency_key is not None:
                    wants["keys"].add((org_seq, request.idempotency_key))
        elif isinstance(write, Apply):
            wants["accounts"].add((org_seq, write.account_id))
            wants["invoices"].add((org_seq, write.account_id, write.request.invoice_id))
            as_of = write.request.as_of or today
            wants["candidates"].add((org_seq, write.account_id, as_of))
        elif isinstance(write, Settle):
            wants["accounts"].add((org_seq, write.account_id))
            wants["invoices"].add((org_seq, write.account_id, write.invoice_id))
        elif isinstance(write, TopUp | SetWallet):
            wants["accounts"].add((org_seq, write.account_id))
        else:
            wants["credits"].add((org_seq, write.credit_id))
    return wants


def run_group(
    store: MemoryLedger, org_seq: int, writes: list[Write], now: datetime
) -> list[Outcome]:
    """One coalesced transaction: load once, bring stale accounts up to the day, decide each
    write in arrival order (each failing alone), save once. Asserts along the way that no
    decision mutates `Loaded` and that NeedCandidates is only raised while more exist."""
    loaded = store.load(today=now.date(), **wants_of(org_seq, writes, now.date()))
    merged = Changes()
    for seq in sorted(loaded.accounts):
        if decisions.needs_bringing(loaded.accounts[seq], now):
            if seq not in loaded.active:
                store.load_active(loaded, seq)
            brought = decisions.bring_to_today(loaded, seq, now)
            loaded.apply(brought)
            merged.merge(brought)
    outcomes: list[Outcome] = []
    for write in writes:
        for _attempt in range(1000):
            before = copy.deepcopy(loaded)
            try:
                outcome, changes = decide(loaded, org_seq, write, now)
            except NeedCandidates as need:
                assert loaded == before, "a decision changed what it was given"
                key = (need.account_seq, need.as_of)
                assert not loaded.complete.get(key, False), "asked for more than there is"
                assert need.have == len(loaded.candidates.get(key, []))
                store.load_candidates(loaded, need.account_seq, need.as_of, store.more)
                continue
            except DrawdownError as error:
                assert loaded == before, "a failed decision changed what it was given"
                outcomes.append(error)
                break
            assert loaded == before, "a decision changed what it was given"
            loaded.apply(changes)
            merged.merge(changes)
            outcomes.append(outcome)
            break
        else:
            raise AssertionError("a decision kept asking for candidates")
    store.save(merged)
    return outcomes
