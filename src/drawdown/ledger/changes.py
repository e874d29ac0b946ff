"""What a group of writes has read, and what its decisions change.

A write has one shape: the store loads what the decision needs (`Loaded`, in one call), a pure
function in `ledger/` decides and returns `Changes`, and the store saves them (one call). The
coalescer runs many writes in one transaction: each decision reads `Loaded` as the earlier
decisions of the group left it (`Loaded.apply`), and the group's changes are saved together.

Decisions never mutate what they are given: they copy a record before changing it
(`dataclasses.replace`, a new `CreditAmounts`) and return the copies in `Changes`.
"""

from dataclasses import dataclass, field, replace
from datetime import date, datetime
from decimal import Decimal

from drawdown.ledger.alerts import NO_ALERTS, AccountAlerts, AlertKind
from drawdown.ledger.outbox import OutboxEvent
from drawdown.ledger.records import (
    AccountRecord,
    ApplicationRecord,
    CreditRecord,
    TransactionRecord,
)
from drawdown.ledger.uncovered import UncoveredMark
from drawdown.ledger.usage import Meter
from drawdown.ledger.usage_records import AppliedEvent, PendingEvent, UsageSums
from drawdown.ledger.wallet import (
    EntryChange,
    TopupKey,
    WalletEntryRecord,
    WalletRecord,
)

# (account_seq, kind, threshold) -> when it fired, or None: armed again
AlertMarks = dict[tuple[int, AlertKind, Decimal], datetime | None]

FIRST_CANDIDATES = 8
# a burn's first list: one credit usually pays a batch, and each candidate read costs every
# account of a round (NeedCandidates reads further when they do not suffice)
FIRST_USAGE_CANDIDATES = 2


class NeedCandidates(Exception):
    """A decision needs more of an account's candidates (or a list for another day) than were
    loaded: the coalescer loads them (`WriteTransaction.candidates`) and decides again."""

    def __init__(self, account_seq: int, as_of: date, have: int) -> None:
        super().__init__(f"account {account_seq} needs candidates on {as_of} past {have}")
        self.account_seq = account_seq
        self.as_of = as_of
        self.have = have


@dataclass(frozen=True)
class Holdings:
    """What a locked account has that its kept balance does not show: whether it ever had a
    credit, and the invoices of its HELD applications."""

    has_credits: bool
    held_invoices: tuple[str, ...]


@dataclass
class Changes:
    """Everything one decision (or a group of them, merged) writes."""

    # credits granted now (seq 0 until saved); their CREDITED lines are in `lines`
    new_credits: list[CreditRecord] = field(default_factory=list)
    # existing credits with new amounts or status, by credit id, as they now stand
    credits: dict[str, CreditRecord] = field(default_factory=dict)
    # new ledger lines in the order they happened; each names its credit by id
    lines: list[TransactionRecord] = field(default_factory=list)
    # accounts whose kept balance changed (totals, as_of, valid_through, balance_updated_at)
    accounts: dict[int, AccountRecord] = field(default_factory=dict)
    # applications inserted (seq 0) or updated, by (account_seq, invoice_id)
    applications: dict[tuple[int, str], ApplicationRecord] = field(default_factory=dict)
    # usage events applied (each once), what they add to the running sums per (account_seq,
    # meter_seq), and per account the latest timestamp applied
    events: list[AppliedEvent] = field(default_factory=list)
    usage_sums: dict[tuple[int, int], UsageSums] = field(default_factory=dict)
    applied_through: dict[int, datetime] = field(default_factory=dict)
    # events recorded with the change (docs/webhooks.md), in the order they happened; the
    # balance alerts that fired or were armed again; usage.uncovered's marks per account
    outbox: list[OutboxEvent] = field(default_factory=list)
    alert_marks: AlertMarks = field(default_factory=dict)
    uncovered: dict[int, UncoveredMark] = field(default_factory=dict)
    # wallets made (seq 0) or changed, by account seq, as they now stand; entries written, in
    # order; existing entries whose status changed, by entry id; top-up keys used
    wallets: dict[int, WalletRecord] = field(default_factory=dict)
    wallet_entries: list[WalletEntryRecord] = field(default_factory=list)
    entry_changes: dict[str, EntryChange] = field(default_factory=dict)
    topup_keys: list[TopupKey] = field(default_factory=list)
    # accounts whose own fields changed (name, currency, status, details, archived_at)
    profiles: dict[int, AccountRecord] = field(default_factory=dict)

    def merge(self, later: "Changes") -> None:
        """Add a later decision's changes; where both touch a record, the later one wins."""
        # looked up only when there is something to find: a group merges every decision, and
        # building these each time grew with the square of the group's size
        new_ids = (
            {credit.id: n for n, credit in enumerate(self.new_credits)}
            if later.credits and self.new_credits
            else {}
        )
        for credit in later.new_credits:
            self.new_credits.append(credit)
        for credit_id, credit in later.credits.items():
            if credit_id in new_ids:  # a credit granted earlier in the group changed again
                self.new_credits[new_ids[credit_id]] = credit
            else:
                self.credits[credit_id] = credit
        self.lines += later.lines
        self.accounts.update(later.accounts)
        for key, application in later.applications.items():
            earlier = self.applications.get(key)
            if earlier is not None and earlier.seq == 0:
                application.seq = 0  # still to be inserted
            self.applications[key] = application
        self.events += later.events
        for pair, sums in later.usage_sums.items():
            earlier_sums = self.usage_sums.get(pair)
            self.usage_sums[pair] = sums if earlier_sums is None else earlier_sums + sums
        for seq, through in later.applied_through.items():
            self.applied_through[seq] = max(through, self.applied_through.get(seq, through))
        self.outbox += later.outbox
        self.alert_marks.update(later.alert_marks)
        self.uncovered.update(later.uncovered)
        for seq, wallet in later.wallets.items():
            earlier_wallet = self.wallets.get(seq)
            if earlier_wallet is not None and earlier_wallet.seq == 0:
                wallet = replace(wallet, seq=0)  # still to be inserted
            self.wallets[seq] = wallet
        self.wallet_entries += later.wallet_entries
        new_entries = (
            {entry.id: n for n, entry in enumerate(self.wallet_entries)}
            if later.entry_changes
            else {}
        )
        for entry_id, change in later.entry_changes.items():
            if entry_id in new_entries:  # written earlier in the group: insert it as it ends
                n = new_entries[entry_id]
                self.wallet_entries[n] = replace(
                    self.wallet_entries[n], status=change.status, updated_at=change.updated_at
                )
            else:
                self.entry_changes[entry_id] = change
        self.topup_keys += later.topup_keys
        self.profiles.update(later.profiles)

    def __bool__(self) -> bool:
        return bool(
            self.new_credits
            or self.credits
            or self.lines
            or self.accounts
            or self.applications
            or self.events
            or self.usage_sums
            or self.applied_through
            or self.outbox
            or self.alert_marks
            or self.uncovered
            or self.wallets
            or self.wallet_entries
            or self.entry_changes
            or self.topup_keys
            or self.profiles
        )


@dataclass
class Loaded:
    """What the store read for a group, under the locks of every account in it, and how the
    group's decisions so far have changed it."""

    # every locked account, by seq and by (org_seq, account id)
    accounts: dict[int, AccountRecord] = field(default_factory=dict)
    account_ids: dict[tuple[int, str], int] = field(default_factory=dict)
    # every credit read, by id (credit ids are unique across organizations)
    credits: dict[str, CreditRecord] = field(default_factory=dict)
    # (org_seq, idempotency key) -> credit id, for the keys asked for that exist
    by_key: dict[tuple[int, str], str] = field(default_factory=dict)
    # (account_seq, invoice_id) -> its application, for the invoices asked for that exist;
    # the credits their allocations name are in `credits`
    applications: dict[tuple[int, str], ApplicationRecord] = field(default_factory=dict)
    # (account_seq, as_of) -> ids of the active credits in effect on as_of, in drawdown order:
    # the first ones only, unless `complete` says the list is whole
    candidates: dict[tuple[int, date], list[str]] = field(default_factory=dict)
    complete: dict[tuple[int, date], bool] = field(default_factory=dict)
    # account_seq -> ids of all its ACTIVE credits, for accounts whose kept balance does not
    # hold on the day asked for (they must be brought up to date first)
    active: dict[int, list[str]] = field(default_factory=dict)
    # account_seq -> its pending usage events in (timestamp, id) order, the first ones only
    # when `pending_more` says more wait; org_seq -> its usage meters (any status), by id
    pending: dict[int, list[PendingEvent]] = field(default_factory=dict)
    pending_more: dict[int, bool] = field(default_factory=dict)
    meters: dict[int, list[Meter]] = field(default_factory=dict)
    # account_seq -> its balance alerts (none read: no thresholds and nothing fired); its
    # usage.uncovered mark (burn-down only; none read: never reported)
    alerts: dict[int, AccountAlerts] = field(default_factory=dict)
    uncovered: dict[int, UncoveredMark] = field(default_factory=dict)

    def alerts_of(self, account_seq: int) -> AccountAlerts:
        return self.alerts.get(account_seq, NO_ALERTS)

    # account_seq -> its wallet, for every locked account that has one
    wallets: dict[int, WalletRecord] = field(default_factory=dict)
    # (org_seq, Idempotency-Key) -> the top-up that used it, for the keys asked for that exist
    topup_keys: dict[tuple[int, str], TopupKey] = field(default_factory=dict)
    # account_seq -> what it still has besides its balance (for updates and deletes)
    holdings: dict[int, "Holdings"] = field(default_factory=dict)

    def account(self, org_seq: int, account_id: str) -> AccountRecord | None:
        seq = self.account_ids.get((org_seq, account_id))
        return self.accounts[seq] if seq is not None else None

    def apply(self, changes: Changes) -> None:
        """Make a decision's changes visible to the next decision of the group. Credits
        granted in the group are found by id and idempotency key, but are not candidates: the
        group's applications are taken to come before its grants (they were all in flight at
        once, so either order is a valid one)."""
        for credit in changes.new_credits:
            self.credits[credit.id] = credit
            if credit.idempotency_key is not None:
                self.by_key[(credit.org_seq, credit.idempotency_key)] = credit.id
        self.credits.update(changes.credits)
        for seq, account in changes.accounts.items():
            self.accounts[seq] = account
        self.applications.update(changes.applications)
        marks: dict[int, dict[tuple[AlertKind, Decimal], bool]] = {}
        for (seq, kind, threshold), fired_at in changes.alert_marks.items():
            marks.setdefault(seq, {})[(kind, threshold)] = fired_at is not None
        for seq, account_marks in marks.items():
            self.alerts[seq] = self.alerts_of(seq).with_marks(account_marks)
        self.uncovered.update(changes.uncovered)
        # a profile is the whole account as the decision left it, balance included
        self.accounts.update(changes.profiles)
        self.wallets.update(changes.wallets)
        for key in changes.topup_keys:
            self.topup_keys[(key.org_seq, key.key)] = key
        if changes.events:
            applied = {event.seq for event in changes.events}
            for seq in {event.account_seq for event in changes.events}:
                self.pending[seq] = [e for e in self.pending.get(seq, []) if e.seq not in applied]
