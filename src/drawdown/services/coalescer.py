"""Coalescing: the money writes that arrive while a transaction is in flight run together in
the next one.

Each write names what it needs (`Wants`) and how it decides (a pure function from
`ledger/`). A group takes every write waiting, up to `max_group`: one transaction locks all
their accounts in seq order and reads what they need in one store call, the clock is read
under the locks, accounts behind the day are brought up to it, each write is decided in
arrival order against the state the earlier ones left, and the group's changes are saved in
one store call. Only after the commit does any write get its answer.

Each write keeps its own result and its own error: a decision that refuses (a 4xx) changes
nothing and the others go on. A deadlock, a serialization failure, a unique key taken by a
concurrent commit or a connection lost before COMMIT runs the whole group again (decisions are
pure, so they simply run again on what the new transaction reads). Any other failure of the
transaction splits the group and runs each write alone, so one write the database refuses
fails only itself.
"""

import asyncio
import logging
import random
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any, Generic, TypeVar

from drawdown.clock import Clock
from drawdown.errors import DrawdownError
from drawdown.ledger.changes import Changes, Loaded, NeedCandidates
from drawdown.ledger.decisions import bring_to_today, needs_bringing
from drawdown.ledger.outbox import SYSTEM, stamped
from drawdown.store.faults import Fault, domain_error, is_unique_violation, judge
from drawdown.store.interface import BalanceMoved, Wants, WriteStore, WriteTransaction

log = logging.getLogger("drawdown.coalescer")

T = TypeVar("T")

ATTEMPTS = 4
MAX_GROUP = 64
# NeedCandidates asks for more of an account's credits; each round reads this many times more
MORE_CANDIDATES_FACTOR = 8
# a burn-down batch may span many days, each its own list of candidates
MAX_CANDIDATE_ROUNDS = 1000

Decide = Callable[[Loaded, datetime], tuple[T, Changes]]


@dataclass
class Write(Generic[T]):
    """One request's write: what to load for it, and its decision."""

    wants: Callable[[Wants], None]
    decide: Decide[T]
    keys: frozenset[object]  # the accounts and credits it names, to keep groups apart
    adds_only: bool  # a grant: it only adds to balances
    actor: str  # who asked: the events it causes name them (ledger/outbox.py)
    size: int = 1  # how many writes' worth of work it is (a burn: its accounts)
    future: "asyncio.Future[T]" = field(init=False)


@dataclass
class _Outcome:
    result: Any = None
    error: BaseException | None = None


class Coalescer:
    def __init__(
        self, store: WriteStore, clock: Clock, *, max_group: int = MAX_GROUP, in_flight: int = 1
    ) -> None:
        self.store = store
        self.clock = clock
        self.max_group = max_group
        # called after a commit that recorded events (the webhook deliverer's wake-up)
        self.on_events: Callable[[], None] | None = None
        self._waiting: deque[Write[Any]] = deque()
        self._slots = in_flight
        # each group in flight, with the accounts and credits its writes name
        self._running: dict[asyncio.Task[None], frozenset[object]] = {}
        # for tests and the bench: how many transactions ran, and how many writes they held
        self.groups = 0
        self.writes = 0

    async def submit(
        self,
        decide: Decide[T],
        wants: Callable[[Wants], None],
        *,
        adds_only: bool = False,
        actor: str = SYSTEM,
        size: int = 1,
    ) -> T:
        """Run one write in the next group; its result or its error, after the commit.
        `adds_only`: the write only adds to balances (a grant); `actor`: who asked; `size`: how
        many writes' worth of work it is (a group holds `max_group` of them)."""
        write: Write[T] = Write(wants, decide, _keys_of(wants), adds_only, actor, size)
        write.future = asyncio.get_running_loop().create_future()
        self._waiting.append(write)
        self._start_groups()
        # shield: a caller that goes away (a dropped connection) must not cancel a write that
        # may already be part of a group; the group finishes and the answer is dropped
        return await asyncio.shield(write.future)

    def _start_groups(self) -> None:
        """Start groups while there are writes waiting and slots free. A group takes no write
        that touches what a group in flight holds: on one process, writes to one account wait
        for the next group rather than for a lock another group of ours holds."""
        while self._waiting and len(self._running) < self._slots:
            busy: set[object] = set().union(*self._running.values())
            group: list[Write[Any]] = []
            later: deque[Write[Any]] = deque()
            size = 0
            for write in self._waiting:
                fits = not group or size + write.size <= self.max_group
                if fits and not write.keys & busy:
                    group.append(write)
                    size += write.size
                else:
                    later.append(write)
            if not group:
                return
            self._waiting = later
            task = asyncio.get_running_loop().create_task(self._run(group))
            self._running[task] = frozenset().union(*(write.keys for write in group))
            task.add_done_callback(self._finished)

    def _finished(self, task: asyncio.Task[None]) -> None:
        self._running.pop(task, None)
        if not task.cancelled() and task.exception() is not None:
            log.error("a write group failed unexpectedly", exc_info=task.exception())
        self._start_groups()

    async def _run(self, group: list[Write[Any]]) -> None:
        try:
            outcomes = await self._run_group(group)
        except BaseException as error:
            outcomes = [_Outcome(error=error)] * len(group)
        for write, outcome in zip(group, outcomes, strict=True):
            if write.future.done():
                continue
            if outcome.error is not None:
                write.future.set_exception(outcome.error)
            else:
                write.future.set_result(outcome.result)

    async def _run_group(self, group: list[Write[Any]]) -> list[_Outcome]:
        adding = _only_adds_to_one_account(group)
        for attempt in range(1, ATTEMPTS + 1):
            committing = False
            try:
                async with self.store.transaction() as tx:
                    outcomes, recorded = await self._decide_and_save(tx, group, adding=adding)
                    committing = True
                self.groups += 1
                self.writes += len(group)
                if recorded and self.on_events is not None:
                    self.on_events()
                return outcomes
            except DrawdownError as error:
                return [_Outcome(error=error)] * len(group)
            except BalanceMoved:
                # a balance did not hold on the day: run again, locked, without an attempt lost
                adding = False
                continue
            except Exception as error:
                fault = judge(error)
                again = (
                    fault is Fault.RETRY
                    or (fault is Fault.LOST and not committing)
                    or is_unique_violation(error)
                )
                if again and attempt < ATTEMPTS:
                    log.info("running a group of %d writes again: %s", len(group), error)
                    await asyncio.sleep(random.uniform(0, 0.02 * 2**attempt))
                    continue
                if fault is None and not is_unique_violation(error) and len(group) > 1:
                    log.warning("a group of %d writes failed; running each alone", len(group))
                    return [(await self._run_group([write]))[0] for write in group]
                # not the database's fault: a bug, answered 500 by the last-resort guard
                mapped = domain_error(error, committing=committing) or error
                return [_Outcome(error=mapped)] * len(group)
        raise AssertionError("unreachable")

    async def _decide_and_save(
        self, tx: WriteTransaction, group: list[Write[Any]], *, adding: bool
    ) -> tuple[list[_Outcome], bool]:
        """With `adding` (grants to one account), the load takes no lock and the save adds to
        the balance, which locks the account only from the save to the COMMIT; a balance that
        does not hold on the day sends the group back to run under locks. Returns each write's
        outcome, and whether events were recorded."""
        wants = Wants(today=self.clock.now().date())
        for write in group:
            write.wants(wants)
        loaded = await tx.load(wants, lock=not adding)
        for org_seq, account_id in sorted(wants.holdings):
            seq = loaded.account_ids.get((org_seq, account_id))
            if seq is not None:
                loaded.holdings[seq] = await tx.holdings(seq)
        now = self.clock.now()  # under the locks: no write computes with an earlier day
        before = dict(loaded.accounts)
        changes = Changes()
        for seq in sorted(loaded.accounts):
            if needs_bringing(loaded.accounts[seq], now):
                if adding:
                    raise BalanceMoved("an account must be brought up to date under its lock")
                if seq not in loaded.active:
                    active = await tx.active_credits(seq)
                    _merge_credits(loaded, active)
                    loaded.active[seq] = [credit.id for credit in active]
                brought = bring_to_today(loaded, seq, now)
                brought.outbox = stamped(brought.outbox, SYSTEM)
                loaded.apply(brought)
                changes.merge(brought)
        outcomes = []
        for write in group:
            outcome = await self._decide(tx, loaded, write, now)
            if outcome.error is None:
                result, decided = outcome.result
                decided.outbox = stamped(decided.outbox, write.actor)
                if adding:
                    # grants only raise a balance read without its lock: they fire no alert,
                    # and leave re-arming to the next locked write (ledger/alerts.py)
                    decided.alert_marks = {}
                loaded.apply(decided)
                changes.merge(decided)
                outcome = _Outcome(result=result)
            outcomes.append(outcome)
        if changes:
            await tx.save(changes, added_to=before if adding else None)
        return outcomes, bool(changes.outbox)

    async def _decide(
        self, tx: WriteTransaction, loaded: Loaded, write: Write[Any], now: datetime
    ) -> _Outcome:
        for _ in range(MAX_CANDIDATE_ROUNDS):
            try:
                return _Outcome(result=write.decide(loaded, now))
            except NeedCandidates as need:
                await _load_candidates(tx, loaded, need)
            except DrawdownError as error:
                return _Outcome(error=error)
            except Exception as error:  # a bug in one decision fails that write alone
                log.exception("a write's decision failed")
                return _Outcome(error=error)
        raise AssertionError("a decision kept asking for more candidates")


def _only_adds_to_one_account(group: list[Write[Any]]) -> bool:
    """Grants that all go to one account: several accounts would take their balances' row
    locks in the order the save meets them, not in seq order."""
    accounts = {key for write in group for key in write.keys}
    return all(write.adds_only for write in group) and len(accounts) == 1


def _keys_of(wants: Callable[[Wants], None]) -> frozenset[object]:
    named = Wants(today=date.min)
    wants(named)
    return frozenset(
        [
            *(("account", *account) for account in named.accounts | named.usage),
            *(("account seq", seq) for seq in named.account_seqs),
            *(("credit", *credit) for credit in named.credits),
        ]
    )


def _merge_credits(loaded: Loaded, credits: list[Any]) -> None:
    """Add credits read from the store, keeping the group's own newer versions."""
    for credit in credits:
        loaded.credits.setdefault(credit.id, credit)


async def _load_candidates(tx: WriteTransaction, loaded: Loaded, need: NeedCandidates) -> None:
    key = (need.account_seq, need.as_of)
    have = loaded.candidates.setdefault(key, [])
    limit = max(len(have) * MORE_CANDIDATES_FACTOR, 64)
    more = await tx.candidates(need.account_seq, need.as_of, len(have), limit)
    _merge_credits(loaded, more)
    have += [credit.id for credit in more]
    loaded.complete[key] = len(more) < limit
