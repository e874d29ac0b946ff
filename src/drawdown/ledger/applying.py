"""Applying credits to invoices, then the account's wallet for what they leave
(docs/wallet.md): hold, debit, capture, release. Each decision works on the account's book and
its wallet's, so nothing is spent twice or lost."""

from dataclasses import replace
from datetime import date, datetime
from decimal import Decimal

from drawdown.errors import Conflict, NotFound
from drawdown.ledger.allocation import Candidate, LineAllocation, allocate
from drawdown.ledger.application import ApplicationMode, ApplicationStatus
from drawdown.ledger.book import Book
from drawdown.ledger.changes import Changes, Loaded, NeedCandidates
from drawdown.ledger.copying import copied
from drawdown.ledger.credit import CreditAmounts, CreditStatus, TransactionType
from drawdown.ledger.draft import Draft
from drawdown.ledger.money import ZERO, add, sub, total
from drawdown.ledger.records import (
    Allocation,
    ApplicationRecord,
    AppliedLine,
    CreditRecord,
    TransactionRecord,
    WalletShare,
)
from drawdown.ledger.requests import ApplicationRequest
from drawdown.ledger.wallet import WalletBook

_CANNOT_SETTLE = {
    ApplicationStatus.DEBITED: "was released; apply it again to hold credits",
    ApplicationStatus.RELEASED: "is already debited; it cannot be released",
}


class _Moves:
    """One decision's changes to several credits of an account, gathered first, then recorded
    in the book once per credit (its lines together, in the order the credits were touched)."""

    def __init__(self, draft: Draft, book: Book) -> None:
        self.draft = draft
        self.book = book
        self.credits: dict[str, CreditRecord] = {}
        self.before: dict[str, tuple[CreditStatus, CreditAmounts]] = {}
        self.lines: dict[str, list[TransactionRecord]] = {}

    def track(self, credit_id: str) -> CreditRecord:
        if credit_id not in self.credits:
            current = self.draft.credit(credit_id)
            assert current is not None, f"credit {credit_id} was not loaded"
            credit = self.draft.edit(current)
            self.credits[credit_id] = credit
            self.before[credit_id] = (credit.status, copied(credit.amounts))
            self.lines[credit_id] = []
        return self.credits[credit_id]

    def add_line(
        self,
        credit: CreditRecord,
        kind: TransactionType,
        amount: Decimal,
        invoice_id: str | None = None,
        entity_id: str | None = None,
    ) -> None:
        self.lines[credit.id].append(self.book.line(credit, kind, amount, invoice_id, entity_id))

    def hold(self, allocation: Allocation) -> None:
        amounts = self.credits[allocation.credit_id].amounts
        amounts.held = add(amounts.held, allocation.amount)

    def debit(self, invoice_id: str, line: AppliedLine, allocation: Allocation) -> None:
        credit = self.track(allocation.credit_id)
        credit.amounts.held = sub(credit.amounts.held, allocation.amount)
        credit.amounts.consumed = add(credit.amounts.consumed, allocation.amount)
        self.add_line(
            credit,
            TransactionType.DEBITED,
            allocation.amount,
            invoice_id=invoice_id,
            entity_id=line.entity_id,
        )

    def give_back(self, allocation: Allocation) -> None:
        """Return a held amount: to the credit if it is still usable, else to its closing
        line."""
        credit = self.track(allocation.credit_id)
        credit.amounts.held = sub(credit.amounts.held, allocation.amount)
        if credit.status is CreditStatus.VOIDED:
            credit.amounts.voided = add(credit.amounts.voided, allocation.amount)
            self.add_line(credit, TransactionType.VOIDED, allocation.amount)
        elif credit.status is CreditStatus.EXPIRED:
            credit.amounts.expired = add(credit.amounts.expired, allocation.amount)
            self.add_line(credit, TransactionType.EXPIRED, allocation.amount)

    def give_back_all(self, application: ApplicationRecord) -> None:
        self._track_all(application)
        for line in application.lines:
            for allocation in line.allocations:
                self.give_back(allocation)
        held = application.wallet_held
        if held is not None:
            entry_id, amount = held
            self._wallet().release(entry_id, amount, application.invoice_id)

    def debit_credits(self, application: ApplicationRecord) -> None:
        self._track_all(application)
        for line in application.lines:
            for allocation in line.allocations:
                self.debit(application.invoice_id, line, allocation)

    def debit_all(self, application: ApplicationRecord) -> None:
        """Debit what a HELD application holds: its credits' shares become DEBITED lines, the
        wallet's ON_HOLD entry becomes COMPLETED."""
        self.debit_credits(application)
        held = application.wallet_held
        if held is not None:
            entry_id, amount = held
            self._wallet().capture(entry_id, amount)

    def _wallet(self) -> WalletBook:
        wallet = self.draft.wallet(self.book.account.seq)
        assert wallet is not None, "an application names a wallet its account does not have"
        return wallet

    def _track_all(self, application: ApplicationRecord) -> None:
        for line in application.lines:
            for allocation in line.allocations:
                self.track(allocation.credit_id)

    def record(self) -> None:
        for credit_id, credit in self.credits.items():
            status, amounts = self.before[credit_id]
            self.book.record(credit, status, amounts, self.lines[credit_id])


def _allocate(
    draft: Draft, moves: _Moves, account_seq: int, request: ApplicationRequest, as_of: date
) -> list[LineAllocation]:
    """Allocate over the account's candidates in drawdown order, as they stand now (a replaced
    hold's credits as given back). Only as many candidates as pay the invoice need be loaded:
    while the list is not whole and something is unpaid, ask for more."""
    key = (account_seq, as_of)
    listed = draft.loaded.candidates.get(key)
    if listed is None:
        raise NeedCandidates(account_seq, as_of, have=0)
    current = (draft.credit(credit_id) for credit_id in listed)
    # Credits voided, expired or consumed earlier in the group are still listed (the list was
    # read before); what is ACTIVE now is what may pay.
    usable = [c for c in current if c is not None and c.status is CreditStatus.ACTIVE]
    result = allocate(
        request.line_items,
        [
            Candidate(
                credit_id=c.id,
                available=c.amounts.available,
                priority=c.priority,
                effective_from=c.effective_from,
                effective_until=c.effective_until,
                created_at=c.created_at,
                applicable_entity_ids=c.applicable_entity_ids,
            )
            for c in usable
        ],
        as_of,
    )
    if not draft.loaded.complete.get(key, False) and any(line.remaining > 0 for line in result):
        # A credit further down may pay what these cannot (another scope, or simply more).
        raise NeedCandidates(account_seq, as_of, have=len(listed))
    paid = {credit_id for line in result for credit_id, _ in line.allocations}
    for credit in usable:
        if credit.id in paid:
            moves.track(credit.id)
    return result


def apply(
    loaded: Loaded, org_seq: int, account_id: str, request: ApplicationRequest, now: datetime
) -> tuple[ApplicationRecord, Changes]:
    """HOLD or DEBIT an invoice's line items. A debited invoice answers the same request with
    itself and refuses another; a held one is replaced (its hold given back first), even by the
    same request: its credits may have been voided, expired or outranked since."""
    draft = Draft(loaded, now)
    account_seq = draft.account_seq(org_seq, account_id)
    book = draft.book(account_seq)
    fingerprint = request.fingerprint()
    existing = loaded.applications.get((account_seq, request.invoice_id))
    moves = _Moves(draft, book)
    if existing is not None:
        if existing.status is ApplicationStatus.DEBITED:
            if existing.request_hash == fingerprint:
                return existing, draft.changes()
            raise Conflict(
                f"invoice '{request.invoice_id}' is already debited; a debited application "
                "cannot be changed"
            )
        if existing.status is ApplicationStatus.HELD:
            moves.give_back_all(existing)

    as_of = request.as_of or book.today
    debit = request.mode is ApplicationMode.DEBIT
    paid_lines = _allocate(draft, moves, account_seq, request, as_of)
    wallet = draft.wallet(account_seq) if request.use_wallet else None
    if wallet is not None and not wallet.wallet.pays_on(as_of):
        wallet = None
    shares = _wallet_shares(paid_lines, wallet.balance if wallet else ZERO)
    entry_id = ""
    if wallet is not None and any(share > 0 for share in shares):
        owed = total(shares)
        if debit:
            entry = wallet.debit(owed, request.invoice_id, request.invoice_id)
        else:
            entry = wallet.hold(owed, request.invoice_id)
        entry_id = entry.id
    lines = []
    for paid, share in zip(paid_lines, shares, strict=True):
        allocations = tuple(Allocation(credit_id, amount) for credit_id, amount in paid.allocations)
        wallet_share = None
        if wallet is not None and share > 0:
            wallet_share = WalletShare(wallet.wallet.id, share, entry_id)
        lines.append(
            AppliedLine(
                paid.item.entity_id,
                paid.item.entity_type,
                paid.item.amount,
                allocations,
                wallet_share,
            )
        )
        for allocation in allocations:
            moves.hold(allocation)
    application = ApplicationRecord(
        account_id=account_id,
        invoice_id=request.invoice_id,
        status=ApplicationStatus.DEBITED if debit else ApplicationStatus.HELD,
        mode=request.mode,
        as_of=as_of,
        lines=lines,
        created_at=existing.created_at if existing else now,
        updated_at=now,
        request_hash=fingerprint,
        seq=existing.seq if existing else 0,
    )
    if debit:
        # the credits' holds become DEBITED lines; the wallet's share was debited at once
        moves.debit_credits(application)
    moves.record()
    draft.applications[(account_seq, request.invoice_id)] = application
    return application, draft.changes()


def _wallet_shares(paid_lines: list[LineAllocation], balance: Decimal) -> list[Decimal]:
    """What the wallet pays of each line item after its credits: what they left, in order, as
    far as the balance goes."""
    shares = []
    left = balance
    for paid in paid_lines:
        share = min(paid.remaining, left)
        left = sub(left, share)
        shares.append(share)
    return shares


def capture(
    loaded: Loaded, org_seq: int, account_id: str, invoice_id: str, now: datetime
) -> tuple[ApplicationRecord, Changes]:
    """Debit what the invoice holds; a debited one answers unchanged."""
    return _settle(loaded, org_seq, account_id, invoice_id, now, ApplicationStatus.DEBITED)


def release(
    loaded: Loaded, org_seq: int, account_id: str, invoice_id: str, now: datetime
) -> tuple[ApplicationRecord, Changes]:
    """Give back what the invoice holds; a released one answers unchanged."""
    return _settle(loaded, org_seq, account_id, invoice_id, now, ApplicationStatus.RELEASED)


def _settle(
    loaded: Loaded,
    org_seq: int,
    account_id: str,
    invoice_id: str,
    now: datetime,
    target: ApplicationStatus,
) -> tuple[ApplicationRecord, Changes]:
    draft = Draft(loaded, now)
    account_seq = draft.account_seq(org_seq, account_id)
    book = draft.book(account_seq)
    application = loaded.applications.get((account_seq, invoice_id))
    if application is None:
        raise NotFound(
            f"no credit application for invoice '{invoice_id}' on account '{book.account.id}'"
        )
    if application.status is target:
        return application, draft.changes()
    if application.status is not ApplicationStatus.HELD:
        raise Conflict(f"invoice '{invoice_id}' {_CANNOT_SETTLE[target]}")
    moves = _Moves(draft, book)
    if target is ApplicationStatus.DEBITED:
        moves.debit_all(application)
    else:
        moves.give_back_all(application)
    moves.record()
    settled = replace(application, status=target, updated_at=now)
    draft.applications[(account_seq, invoice_id)] = settled
    return settled, draft.changes()
