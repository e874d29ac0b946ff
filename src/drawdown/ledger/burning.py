"""Drawing usage down (docs/usage.md, "Drawing down"): one decision applies a batch of an
account's pending events, in (timestamp, id) order, under the account's lock.

Each event is priced on every ACTIVE meter it matches (meter id order) and its cost drawn from
the account's credits in drawdown order among those ACTIVE now and in effect on the event's UTC
date whose scope covers the meter; then the account's wallet, when it is ACTIVE and in effect
on that date (docs/wallet.md); what none pays is uncovered. What a credit pays for one
meter's events in the batch becomes one DEBITED line (entity = the meter id, no invoice), and
every event records which credits paid how much on which line; what the wallet pays for one
meter in the batch is one COMPLETED DEBITED wallet entry, named by each event's share. The
credits' amounts and the balance move through the book, like every debit.
"""

from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal

from drawdown.errors import DrawdownError
from drawdown.ledger import shapes
from drawdown.ledger.allocation import EntityType, covers
from drawdown.ledger.book import Book
from drawdown.ledger.changes import Changes, Loaded, NeedCandidates
from drawdown.ledger.copying import copied
from drawdown.ledger.credit import CreditStatus, TransactionType
from drawdown.ledger.draft import Draft
from drawdown.ledger.ids import TRANSACTION_PREFIX, new_id
from drawdown.ledger.money import MONEY, ZERO, add, total
from drawdown.ledger.outbox import EventType, new_event
from drawdown.ledger.records import AccountRecord, TransactionRecord
from drawdown.ledger.uncovered import UncoveredMark, report
from drawdown.ledger.usage import (
    CostOutOfRange,
    EventStatus,
    MeterStatus,
    matches,
    price,
    quantity,
)
from drawdown.ledger.usage_records import (
    AppliedEvent,
    Charge,
    UsageAllocation,
    UsageSums,
    WalletPaid,
)
from drawdown.ledger.wallet import ENTRY_PREFIX


@dataclass(frozen=True)
class BurnOutcome:
    applied: int  # events applied by this decision
    more: bool  # more events were pending than the batch held
    refused: str | None = None  # why the account's batch could not be applied (none applied)


def burn_accounts(
    loaded: Loaded, accounts: list[tuple[int, str]], now: datetime
) -> tuple[dict[tuple[int, str], BurnOutcome], Changes]:
    """`burn` for each account, as the applier names them (org_seq, account id). Accounts share
    no credit, so each decides on `loaded` as it is; their changes are merged. An account that
    is not there is left out of the answer."""
    outcomes: dict[tuple[int, str], BurnOutcome] = {}
    merged = Changes()
    for key in accounts:
        seq = loaded.account_ids.get(key)
        if seq is None:
            continue
        try:
            outcome, changes = burn(loaded, seq, now)
        except DrawdownError as error:  # this account alone: its events stay pending
            outcomes[key] = BurnOutcome(0, False, error.message)
            continue
        outcomes[key] = outcome
        merged.merge(changes)
    return outcomes, merged


def burn(loaded: Loaded, account_seq: int, now: datetime) -> tuple[BurnOutcome, Changes]:
    """Apply the account's pending events that `loaded` holds (a batch)."""
    draft = Draft(loaded, now)
    book = draft.book(account_seq)
    events = loaded.pending.get(account_seq, [])
    more = loaded.pending_more.get(account_seq, False)
    if not events:
        return BurnOutcome(0, more), draft.changes()
    for day in sorted({event.timestamp.date() for event in events}):
        # every day's first candidates at once, each a cheap round, before any work is done
        if (account_seq, day) not in loaded.candidates:
            raise NeedCandidates(account_seq, day, have=0)
    meters = sorted(
        (m for m in loaded.meters.get(book.account.org_seq, []) if m.status is MeterStatus.ACTIVE),
        key=lambda meter: meter.id,
    )
    purse = _Purse(draft, account_seq)
    applied = []
    by_meter: dict[int, list[Charge]] = {}
    for event in events:
        charges = []
        day = event.timestamp.date()
        for meter in meters:
            if not matches(meter, event.schema_name, event.attributes, event.dimensions):
                continue
            rate = meter.rate_at(event.timestamp)
            if rate is None:
                continue
            amount = quantity(meter, event.attributes)
            try:
                priced = price(amount, rate)
            except CostOutOfRange:
                continue  # only if a meter or rate came after the event was accepted
            allocations, wallet_paid, uncovered = purse.draw(day, meter.id, priced.cost)
            charge = Charge(
                meter_seq=meter.seq,
                meter_id=meter.id,
                quantity=amount,
                rate=rate,
                cost=priced.cost,
                exact_cost=priced.exact,
                allocations=allocations,
                uncovered=uncovered,
                wallet=wallet_paid,
            )
            charges.append(charge)
            by_meter.setdefault(meter.seq, []).append(charge)
        status = EventStatus.APPLIED if charges else EventStatus.UNMETERED
        applied.append(
            AppliedEvent(event.seq, account_seq, event.timestamp, status, tuple(charges), now)
        )
    purse.record(book)
    changes = draft.changes()
    changes.events = applied
    changes.usage_sums = {
        (account_seq, meter_seq): UsageSums.of_charges(charges)
        for meter_seq, charges in by_meter.items()
    }
    changes.applied_through = {account_seq: max(event.timestamp for event in events)}
    uncovered = total(
        charge.uncovered for charges in by_meter.values() for charge in charges if charge.uncovered
    )
    if uncovered > 0:
        _report_uncovered(loaded, book.account, uncovered, now, changes)
    return BurnOutcome(len(applied), more), changes


def _report_uncovered(
    loaded: Loaded, account: AccountRecord, uncovered: Decimal, now: datetime, changes: Changes
) -> None:
    """usage.uncovered, at most once per account per hour (ledger/uncovered.py)."""
    mark = loaded.uncovered.get(account.seq, UncoveredMark())
    changes.uncovered[account.seq], due = report(mark, uncovered, now)
    if due is not None:
        data = {
            "accountId": account.id,
            "unit": account.invoice_currency,
            "uncoveredAmount": due.amount,
            "since": shapes.timestamp(due.since),
        }
        changes.outbox.append(
            new_event(EventType.USAGE_UNCOVERED, account.org_seq, account.seq, now, data)
        )


@dataclass
class _Line:
    """A DEBITED line of the batch, growing as events draw on it."""

    id: str
    amount: Decimal = ZERO


class _Purse:
    """The account's credits as the batch draws them: what each has left, which may pay, and
    the batch's lines by (meter, credit)."""

    def __init__(self, draft: Draft, account_seq: int) -> None:
        self.draft = draft
        self.account_seq = account_seq
        # credit id -> what it has left to pay with (0 for one that may not pay now)
        self.left: dict[str, Decimal] = {}
        self.scopes: dict[tuple[str, str], bool] = {}
        # (meter id, credit id) -> [line id, amount], in the order first drawn
        self.lines: dict[tuple[str, str], _Line] = {}
        # (day, meter id) -> the first candidate that may still pay: the ones before it have
        # nothing left or may not pay that meter, and stay so for the rest of the batch
        self.start: dict[tuple[date, str], int] = {}
        # the wallet, paid from after the credits: what it has left, and the batch's entries
        # by meter id, in the order first drawn
        self.wallet = draft.wallet(account_seq)
        self.wallet_left = self.wallet.balance if self.wallet is not None else ZERO
        self.wallet_lines: dict[str, _Line] = {}

    def draw(
        self, day: date, meter_id: str, cost: Decimal
    ) -> tuple[tuple[UsageAllocation, ...], WalletPaid | None, Decimal]:
        """Pay `cost` for a meter's event of `day`: the credits' allocations, the wallet's
        share, and what is uncovered."""
        if cost == 0:
            return (), None, ZERO
        key = (self.account_seq, day)
        listed = self.draft.loaded.candidates.get(key)
        if listed is None:
            raise NeedCandidates(self.account_seq, day, have=0)
        owed = cost
        allocations = []
        first_open: int | None = None
        index = self.start.get((day, meter_id), 0)
        while index < len(listed) and owed > 0:
            credit_id = listed[index]
            left = self._left(credit_id)
            if left > 0 and self._covers(credit_id, meter_id):
                paid = min(owed, left)
                # amounts of one credit (below 10^18): MONEY is exact or raises, never rounds
                left = MONEY.subtract(left, paid)
                owed = MONEY.subtract(owed, paid)
                self.left[credit_id] = left
                allocations.append(
                    UsageAllocation(credit_id, paid, self._line(meter_id, credit_id, paid))
                )
                if left > 0:
                    first_open = index
                    break
            index += 1
        self.start[(day, meter_id)] = index if first_open is None else first_open
        if owed > 0 and not self.draft.loaded.complete.get(key, False):
            # a credit further down the order may pay the rest
            raise NeedCandidates(self.account_seq, day, have=len(listed))
        wallet_paid = None
        wallet = self.wallet
        if owed > 0 and self.wallet_left > 0 and wallet is not None and wallet.wallet.pays_on(day):
            paid = min(owed, self.wallet_left)
            # wallet totals have 28 digits before the point: MONEY is exact or raises
            self.wallet_left = MONEY.subtract(self.wallet_left, paid)
            owed = MONEY.subtract(owed, paid)
            line = self.wallet_lines.get(meter_id)
            if line is None:
                line = self.wallet_lines[meter_id] = _Line(new_id(ENTRY_PREFIX))
            line.amount = MONEY.add(line.amount, paid)
            wallet_paid = WalletPaid(wallet.wallet.id, paid, line.id)
        return tuple(allocations), wallet_paid, owed

    def _left(self, credit_id: str) -> Decimal:
        left = self.left.get(credit_id)
        if left is None:
            credit = self.draft.credit(credit_id)
            # the lists were read before the group's earlier decisions; what is ACTIVE now pays
            usable = credit is not None and credit.status is CreditStatus.ACTIVE
            left = credit.amounts.available if usable and credit is not None else ZERO
            self.left[credit_id] = left
        return left

    def _covers(self, credit_id: str, meter_id: str) -> bool:
        key = (credit_id, meter_id)
        found = self.scopes.get(key)
        if found is None:
            credit = self.draft.credit(credit_id)
            assert credit is not None
            found = covers(credit.applicable_entity_ids, meter_id, EntityType.USAGE_METER_RATE_CARD)
            self.scopes[key] = found
        return found

    def _line(self, meter_id: str, credit_id: str, amount: Decimal) -> str:
        line = self.lines.get((meter_id, credit_id))
        if line is None:
            line = self.lines[(meter_id, credit_id)] = _Line(new_id(TRANSACTION_PREFIX))
        line.amount = MONEY.add(line.amount, amount)  # at most what one credit holds
        return line.id

    def record(self, book: Book) -> None:
        """Debit each credit what the batch drew from it: its lines together, credits in the
        order first drawn; the book moves the balance."""
        by_credit: dict[str, list[TransactionRecord]] = {}
        for (meter_id, credit_id), line in self.lines.items():
            by_credit.setdefault(credit_id, []).append(
                TransactionRecord(
                    id=line.id,
                    credit_id=credit_id,
                    transaction_type=TransactionType.DEBITED,
                    amount=line.amount,
                    created_at=book.now,
                    entity_id=meter_id,
                )
            )
        for credit_id, lines in by_credit.items():
            current = self.draft.credit(credit_id)
            assert current is not None
            credit = self.draft.edit(current)
            before_status, before_amounts = credit.status, copied(credit.amounts)
            drawn = ZERO
            for debit in lines:
                drawn = add(drawn, debit.amount)
            credit.amounts.consumed = add(credit.amounts.consumed, drawn)
            book.record(credit, before_status, before_amounts, lines)
        if self.wallet is not None:
            for meter_id, line in self.wallet_lines.items():
                self.wallet.debit(line.amount, meter_id, entry_id=line.id)
