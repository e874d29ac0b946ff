"""Ingesting usage events (docs/usage.md, "Ingestion"), coalesced like the money writes: the
requests that arrive while a transaction is in flight are stored together in the next one (one
read of the meters, one insert, one COMMIT), and each request is answered after that COMMIT.

An event refused for what it says (its timestamp, a meter it cannot satisfy, its account, a
conflicting resend) fails alone: the others are stored. A deadlock, a serialization failure or
a connection lost before COMMIT runs the group again; any other failure splits it and runs
each request alone, so one the database refuses fails only itself.
"""

import asyncio
import logging
import random
from collections import deque
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime
from enum import Enum

from drawdown.clock import Clock
from drawdown.errors import DrawdownError, shown
from drawdown.ledger.events import NewEvent, Refused, check_against_meters, check_window
from drawdown.ledger.usage import Meter
from drawdown.store.faults import Fault, domain_error, is_unique_violation, judge
from drawdown.store.interface import Arriving, Verdict, WriteStore

log = logging.getLogger("drawdown.ingest")

ATTEMPTS = 4
MAX_REQUESTS = 64
MAX_EVENTS = 5000
MAX_HOLD_SECONDS = 2.0
HOLD_STEP_SECONDS = 0.05


class Fate(Enum):
    NEW = "new"
    DUPLICATE = "duplicate"
    REFUSED = "refused"


@dataclass(frozen=True)
class Outcome:
    fate: Fate
    reason: str | None = None  # why it was refused
    status: int = 202  # for a refused event: the status /ingest answers it with
    unless_stored: bool = False  # refused only if no event with its id is stored
    # not decided yet: a later occurrence of an id in its request, answered after the
    # occurrence (this index in the request) that took the id (`_echo`)
    echoes: int | None = None


@dataclass(frozen=True)
class AccountRef:
    seq: int
    org_seq: int
    id: str


Woken = Callable[[Iterable[AccountRef]], None]
# whether applying these accounts' events is behind (services/applier.Applier.behind)
Behind = Callable[[set[int]], Awaitable[bool]]


@dataclass
class _Request:
    org_seq: int
    events: list[NewEvent]
    future: "asyncio.Future[list[Outcome]]" = field(init=False)
    keys: set[tuple[int, str]] = field(init=False)

    def __post_init__(self) -> None:
        self.keys = {(self.org_seq, event.id) for event in self.events}


class Ingestion:
    def __init__(
        self,
        store: WriteStore,
        clock: Clock,
        *,
        in_flight: int = 2,
        woken: Woken | None = None,
        behind: Behind | None = None,
        max_hold_seconds: float = MAX_HOLD_SECONDS,
    ) -> None:
        self.store = store
        self.clock = clock
        self.woken = woken
        self.behind = behind
        self.max_hold_seconds = max_hold_seconds
        self._waiting: deque[_Request] = deque()
        self._slots = in_flight
        self._running: set[asyncio.Task[None]] = set()
        # for tests and the bench: transactions run, and requests they held
        self.groups = 0
        self.requests = 0

    async def ingest(self, org_seq: int, events: list[NewEvent]) -> list[Outcome]:
        """Store the events, each with its outcome, in order, all in one transaction; answered
        once they are committed. An id may repeat in the list: see `ingest_batch`."""
        if not events:
            return []
        request = _Request(org_seq, events)
        request.future = asyncio.get_running_loop().create_future()
        self._waiting.append(request)
        self._start_groups()
        # a caller that goes away must not cancel a request that may be part of a group
        return await asyncio.shield(request.future)

    def _start_groups(self) -> None:
        while self._waiting and len(self._running) < self._slots:
            group: list[_Request] = []
            later: deque[_Request] = deque()
            taken: set[tuple[int, str]] = set()
            count = 0
            for request in self._waiting:
                keys = request.keys
                fits = len(group) < MAX_REQUESTS and (
                    not group or count + len(request.events) <= MAX_EVENTS
                )
                # one id twice in a group would be judged against itself: the later waits
                if fits and not keys & taken:
                    group.append(request)
                    taken |= keys
                    count += len(request.events)
                else:
                    later.append(request)
            self._waiting = later
            task = asyncio.get_running_loop().create_task(self._run(group))
            self._running.add(task)
            task.add_done_callback(self._finished)

    def _finished(self, task: asyncio.Task[None]) -> None:
        self._running.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("an ingest group failed unexpectedly", exc_info=task.exception())
        self._start_groups()

    async def _run(self, group: list[_Request]) -> None:
        try:
            answers = await self._run_group(group)
        except BaseException as error:
            answers = [error] * len(group)
        stored = [
            ref for answer in answers if not isinstance(answer, BaseException) for ref in answer[1]
        ]
        if stored and self.woken is not None:
            self.woken(stored)
        if stored and self.behind is not None:
            await self._hold({ref.seq for ref in stored})
        for request, answer in zip(group, answers, strict=True):
            if request.future.done():
                continue
            if isinstance(answer, BaseException):
                request.future.set_exception(answer)
            else:
                request.future.set_result(answer[0])

    async def _hold(self, account_seqs: set[int]) -> None:
        """Backpressure: while applying these accounts' events is behind, the answers (which
        the events' COMMIT already earned) wait, and so does this group's slot, so senders
        slow to what can be applied within the lag goal instead of piling up a backlog.
        Never longer than `max_hold_seconds`; a failed check holds nothing."""
        assert self.behind is not None
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.max_hold_seconds
        while loop.time() < deadline:
            try:
                if not await self.behind(account_seqs):
                    return
            except Exception as error:
                log.info("not holding ingest answers: the backlog check failed: %s", error)
                return
            await asyncio.sleep(HOLD_STEP_SECONDS)

    async def _run_group(
        self, group: list[_Request]
    ) -> list[tuple[list[Outcome], list[AccountRef]] | BaseException]:
        for attempt in range(1, ATTEMPTS + 1):
            committing = False
            try:
                async with self.store.transaction() as tx:
                    now = self.clock.now()
                    meters = await tx.meters({request.org_seq for request in group})
                    checked = [
                        _check(request, meters.get(request.org_seq, []), now) for request in group
                    ]
                    arriving = [
                        Arriving(request.org_seq, event, event.content_hash(), now)
                        for request, outcomes in zip(group, checked, strict=True)
                        for event, outcome in zip(request.events, outcomes, strict=True)
                        if outcome is None
                    ]
                    # what a meter refuses now may be a resend of an event accepted before
                    # the meter came: that is the same event again, accepted and counted once
                    # (read before storing: a later occurrence of its id in the request is
                    # not what was stored before it)
                    unless_stored = [
                        (request.org_seq, event.id)
                        for request, outcomes in zip(group, checked, strict=True)
                        for event, outcome in zip(request.events, outcomes, strict=True)
                        if outcome is not None and outcome.unless_stored
                    ]
                    hashes = await tx.event_hashes(unless_stored) if unless_stored else {}
                    stored = iter(await tx.ingest(arriving) if arriving else [])
                    committing = True
                self.groups += 1
                self.requests += len(group)
                answers: list[tuple[list[Outcome], list[AccountRef]] | BaseException] = []
                for request, outcomes in zip(group, checked, strict=True):
                    final: list[Outcome] = []
                    refs: list[AccountRef] = []
                    for event, refused in zip(request.events, outcomes, strict=True):
                        if refused is not None and refused.echoes is not None:
                            first = refused.echoes
                            final.append(_echo(event, request.events[first], final[first]))
                            continue
                        stored_hash = hashes.get((request.org_seq, event.id))
                        if refused is not None and stored_hash is not None:
                            same = stored_hash == event.content_hash()
                            final.append(
                                _outcome(event, Verdict.DUPLICATE if same else Verdict.CONFLICT)
                            )
                            continue
                        if refused is not None:
                            final.append(refused)
                            continue
                        result = next(stored)
                        final.append(_outcome(event, result.verdict))
                        if result.verdict is Verdict.NEW:
                            assert result.account_seq is not None
                            refs.append(
                                AccountRef(result.account_seq, request.org_seq, event.account_id)
                            )
                    answers.append((final, refs))
                return answers
            except DrawdownError as error:
                return [error] * len(group)
            except Exception as error:
                fault = judge(error)
                again = (
                    fault is Fault.RETRY
                    or (fault is Fault.LOST and not committing)
                    or is_unique_violation(error)
                )
                if again and attempt < ATTEMPTS:
                    log.info("running an ingest group of %d again: %s", len(group), error)
                    await asyncio.sleep(random.uniform(0, 0.02 * 2**attempt))
                    continue
                if fault is None and not is_unique_violation(error) and len(group) > 1:
                    log.warning("an ingest group of %d failed; running each alone", len(group))
                    return [(await self._run_group([request]))[0] for request in group]
                mapped = domain_error(error, committing=committing) or error
                return [mapped] * len(group)
        raise AssertionError("unreachable")


def _check(request: _Request, meters: list[Meter], now: datetime) -> list[Outcome | None]:
    """Each event's refusal for what it says, or None to store it. A meter's refusal holds
    only for an event not stored before (`unless_stored`). The first occurrence of an id that
    passes takes the id: a later one echoes it (`_echo`)."""
    found: list[Outcome | None] = []
    taken: dict[str, int] | None = {} if len(request.keys) < len(request.events) else None
    for index, event in enumerate(request.events):
        if taken is not None and event.id in taken:
            found.append(Outcome(Fate.REFUSED, echoes=taken[event.id]))
            continue
        try:
            check_window(event.timestamp, now)
        except Refused as refused:
            found.append(Outcome(Fate.REFUSED, str(refused), 400))
            continue
        try:
            check_against_meters(event, meters)
        except Refused as refused:
            found.append(Outcome(Fate.REFUSED, str(refused), 400, unless_stored=True))
            continue
        if taken is not None:
            taken[event.id] = index
        found.append(None)
    return found


def _echo(event: NewEvent, first: NewEvent, answered: Outcome) -> Outcome:
    """A later occurrence of an id in a batch, after the one that took the id: with the same
    content it is that event again (a duplicate of it, or refused as the store refused it);
    with other content it is refused, whatever became of the first."""
    if event.content_hash() != first.content_hash():
        return Outcome(
            Fate.REFUSED,
            f"id: event {shown(event.id)} appears earlier in this batch with different "
            "content; an id names one event",
            409,
        )
    return answered if answered.fate is Fate.REFUSED else _DUPLICATE


_NEW = Outcome(Fate.NEW)
_DUPLICATE = Outcome(Fate.DUPLICATE)


def _outcome(event: NewEvent, verdict: Verdict) -> Outcome:
    if verdict is Verdict.NEW:
        return _NEW
    if verdict is Verdict.DUPLICATE:
        return _DUPLICATE
    if verdict is Verdict.CONFLICT:
        return Outcome(
            Fate.REFUSED,
            f"id: event {shown(event.id)} was accepted before with different content; "
            "an id names one event",
            409,
        )
    return Outcome(Fate.REFUSED, f"accountId: account '{event.account_id}' was not found", 404)


async def ingest_batch(
    ingestion: Ingestion, org_seq: int, items: list[NewEvent | str]
) -> list[Outcome]:
    """A request's events (or, for one its shape refused, the reason), each with its outcome,
    decided and stored in one transaction. An id that repeats in the batch counts once: an
    occurrence refused for what it says alone (its shape, its timestamp, a meter) holds no id,
    so a later one is judged on its own; the first that passes those checks takes the id, and
    every later one echoes it (`_echo`)."""
    outcomes: list[Outcome | None] = [None] * len(items)
    events: list[NewEvent] = []
    places: list[int] = []
    for index, item in enumerate(items):
        if isinstance(item, str):
            outcomes[index] = Outcome(Fate.REFUSED, item, 400)
        else:
            events.append(item)
            places.append(index)
    stored = await ingestion.ingest(org_seq, events)
    for index, outcome in zip(places, stored, strict=True):
        outcomes[index] = outcome
    assert all(outcome is not None for outcome in outcomes)
    return [outcome for outcome in outcomes if outcome is not None]
