"""The one interface every store implements for writes: open a write transaction, load what a
group of writes needs in one call, save what its decisions changed in one call.

`store/postgres.py` implements it on asyncpg prepared statements; `store/sqlite.py` on the
embedded database. No service or router knows which one it has.
"""

from collections.abc import Iterable
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass, field
from datetime import date, datetime
from enum import Enum
from typing import Protocol

from drawdown.ledger.changes import (
    FIRST_CANDIDATES,
    FIRST_USAGE_CANDIDATES,
    Changes,
    Holdings,
    Loaded,
)
from drawdown.ledger.events import NewEvent
from drawdown.ledger.records import AccountRecord, CreditRecord
from drawdown.ledger.usage import Meter


class BalanceMoved(Exception):
    """A save that adds to balances found one that no longer holds on the writer's day (or
    would pass its limit): the transaction must roll back and run again under locks."""


@dataclass
class Wants:
    """What a group of writes needs read, with every account it touches locked."""

    # the day the clock showed before locking: accounts whose kept balance does not hold on
    # it (bal_as_of > day or bal_valid_through < day) come with all their ACTIVE credits
    today: date
    # accounts to lock, by (org_seq, account id) and by seq (the sweep)
    accounts: set[tuple[int, str]] = field(default_factory=set)
    account_seqs: set[int] = field(default_factory=set)
    # credits to read by (org_seq, credit id); their accounts are locked too (void)
    credits: set[tuple[int, str]] = field(default_factory=set)
    # credits to find by (org_seq, idempotency key) (grants)
    idempotency_keys: set[tuple[int, str]] = field(default_factory=set)
    # applications to read by (org_seq, account id, invoice id), with the credits their
    # allocations name
    invoices: set[tuple[int, str, str]] = field(default_factory=set)
    # first candidates (ledger.changes.FIRST_CANDIDATES) by (org_seq, account id, as_of)
    candidates: set[tuple[int, str, date]] = field(default_factory=set)
    # accounts whose pending usage events to read (the first `usage_batch` of each, in
    # (timestamp, id) order), with their organizations' meters and their first candidates on
    # `today` (burn-down). Locked too, but an account another transaction holds is skipped
    # (PostgreSQL: SKIP LOCKED) unless something else in the group names it: burn-down never
    # waits for a lock, it comes back for the account.
    usage: set[tuple[int, str]] = field(default_factory=set)
    usage_batch: int = 0
    # top-ups' Idempotency-Keys to find, by (org_seq, key). Every locked account comes with its
    # wallet, if it has one (Loaded.wallets).
    topup_keys: set[tuple[int, str]] = field(default_factory=set)
    # accounts whose holdings to read too (updates and deletes: Loaded.holdings)
    holdings: set[tuple[int, str]] = field(default_factory=set)


def candidate_lists(wants: Wants) -> dict[tuple[int, str, date], int]:
    """The (org_seq, account id, as_of) lists of candidates a load reads, each with how many
    of the first candidates it reads (fewer for a list only burn-down asks for)."""
    usage = FIRST_USAGE_CANDIDATES
    lists = {(org, account_id, wants.today): usage for org, account_id in wants.usage}
    lists.update((key, FIRST_CANDIDATES) for key in wants.candidates)
    return lists


@dataclass(frozen=True)
class Arriving:
    """An event to store, checked: its organization, content and identity."""

    org_seq: int
    event: NewEvent
    content_hash: str
    received_at: datetime


class Verdict(Enum):
    NEW = "new"  # stored now, PENDING
    DUPLICATE = "duplicate"  # stored before with the same content
    CONFLICT = "conflict"  # stored before with different content
    UNKNOWN_ACCOUNT = "unknown account"


@dataclass(frozen=True)
class Stored:
    verdict: Verdict
    account_seq: int | None  # the event's account, when known


class WriteTransaction(Protocol):
    async def load(self, wants: Wants, *, lock: bool = True) -> Loaded:
        """Lock the accounts (in seq order, so groups never deadlock) and read what `wants`
        names, all of it current as of the locks. Without `lock` (a group that only adds to
        balances), read without locking; its save must then add (`added_to`)."""
        ...

    async def candidates(
        self, account_seq: int, as_of: date, offset: int, limit: int
    ) -> list[CreditRecord]:
        """More of a locked account's candidates on `as_of`, in drawdown order, as stored."""
        ...

    async def active_credits(self, account_seq: int) -> list[CreditRecord]:
        """All ACTIVE credits of a locked account, as stored."""
        ...

    async def holdings(self, account_seq: int) -> Holdings:
        """Whether a locked account ever had a credit, and its HELD applications' invoices."""
        ...

    async def meters(self, org_seqs: Iterable[int]) -> dict[int, list[Meter]]:
        """The organizations' usage meters (any status) with their rates, by id."""
        ...

    async def ingest(self, events: list[Arriving]) -> list[Stored]:
        """Store the events that are new (PENDING), in one statement where the engine allows
        it; for each, in order, what became of it. No two may share (org_seq, id)."""
        ...

    async def event_hashes(self, keys: list[tuple[int, str]]) -> dict[tuple[int, str], str]:
        """The content hashes of the stored events among these (org_seq, id)."""
        ...

    async def save(
        self, changes: Changes, *, added_to: dict[int, AccountRecord] | None = None
    ) -> None:
        """Write the changes; new credits get their seq set. One statement where the engine
        allows it. With `added_to` (the accounts as an unlocked load read them), each balance
        moves by what the changes added to it, onto whatever it holds by then, and only if it
        holds on the changes' day; else `BalanceMoved`."""
        ...


class WriteStore(Protocol):
    def transaction(self) -> AbstractAsyncContextManager[WriteTransaction]:
        """A write transaction: committed when the block ends without error, rolled back
        otherwise. Driver failures leave as they are, for the caller to judge
        (`store.faults.judge`): retry, lost, unavailable."""
        ...
