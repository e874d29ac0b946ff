"""Applying credits to invoices: hold, capture, release, debit. Every step runs under the
account's lock, through the account's book, so nothing is spent twice or lost."""

from dataclasses import dataclass, replace
from datetime import date, datetime
from decimal import Decimal

from sqlalchemy.ext.asyncio import AsyncConnection

from drawdown.clock import Clock
from drawdown.errors import Conflict, NotFound
from drawdown.ledger.allocation import Candidate, LineAllocation, allocate
from drawdown.ledger.application import ApplicationMode, ApplicationStatus
from drawdown.ledger.credit import CreditAmounts, CreditStatus, TransactionType
from drawdown.ledger.money import add, sub
from drawdown.ledger.records import (
    AccountRecord,
    Allocation,
    ApplicationRecord,
    AppliedLine,
    CreditRecord,
    TransactionRecord,
)
from drawdown.ledger.requests import ApplicationRequest
from drawdown.services.book import Book
from drawdown.services.paging import decode_token, encode_token
from drawdown.store import applications as store
from drawdown.store import ledger


@dataclass(frozen=True)
class ApplicationPage:
    applications: list[ApplicationRecord]
    next_token: str | None


async def _open_book(conn: AsyncConnection, org_seq: int, account_id: str, clock: Clock) -> Book:
    account = await ledger.find_account(conn, org_seq, account_id, lock=True)
    if account is None:
        raise NotFound(f"account '{account_id}' was not found")
    return await Book.open(conn, account, clock)


async def _find(
    conn: AsyncConnection, account: AccountRecord, invoice_id: str
) -> ApplicationRecord:
    row = await store.find_application(conn, account.seq, invoice_id)
    if row is None:
        raise NotFound(
            f"no credit application for invoice '{invoice_id}' on account '{account.id}'"
        )
    return ApplicationRecord.from_row(row, account.id)


class _Changes:
    """Changes to several credits gathered first, then recorded once per credit."""

    def __init__(self, book: Book) -> None:
        self.book = book
        self.credits: dict[str, CreditRecord] = {}
        self.before: dict[str, tuple[CreditStatus, CreditAmounts]] = {}
        self.lines: dict[str, list[TransactionRecord]] = {}

    def track(self, credit: CreditRecord) -> CreditRecord:
        if credit.id not in self.credits:
            self.credits[credit.id] = credit
            self.before[credit.id] = (credit.status, replace(credit.amounts))
            self.lines[credit.id] = []
        return self.credits[credit.id]

    def add_line(
        self,
        credit: CreditRecord,
        kind: TransactionType,
        amount: Decimal,
        invoice_id: str | None = None,
        entity_id: str | None = None,
    ) -> None:
        self.lines[credit.id].append(self.book.line(credit, kind, amount, invoice_id, entity_id))

    def record(self) -> None:
        for credit_id, credit in self.credits.items():
            status, amounts = self.before[credit_id]
            self.book.record(credit, status, amounts, self.lines[credit_id])


async def _load_credits(
    conn: AsyncConnection, changes: _Changes, application: ApplicationRecord
) -> None:
    ids = {a.credit_id for line in application.lines for a in line.allocations}
    for credit in (await ledger.credits_by_id(conn, changes.book.account.seq, ids)).values():
        changes.track(credit)


def _debit(
    changes: _Changes, application: ApplicationRecord, line: AppliedLine, allocation: Allocation
) -> None:
    credit = changes.credits[allocation.credit_id]
    credit.amounts.held = sub(credit.amounts.held, allocation.amount)
    credit.amounts.consumed = add(credit.amounts.consumed, allocation.amount)
    changes.add_line(
        credit,
        TransactionType.DEBITED,
        allocation.amount,
        invoice_id=application.invoice_id,
        entity_id=line.entity_id,
    )


def _give_back(changes: _Changes, allocation: Allocation) -> None:
    """Return a held amount: to the credit if it is still usable, else to its closing line."""
    credit = changes.credits[allocation.credit_id]
    credit.amounts.held = sub(credit.amounts.held, allocation.amount)
    if credit.status is CreditStatus.VOIDED:
        credit.amounts.voided = add(credit.amounts.voided, allocation.amount)
        changes.add_line(credit, TransactionType.VOIDED, allocation.amount)
    elif credit.status is CreditStatus.EXPIRED:
        credit.amounts.expired = add(credit.amounts.expired, allocation.amount)
        changes.add_line(credit, TransactionType.EXPIRED, allocation.amount)


async def _release_held(
    conn: AsyncConnection, changes: _Changes, application: ApplicationRecord
) -> None:
    await _load_credits(conn, changes, application)
    for line in application.lines:
        for allocation in line.allocations:
            _give_back(changes, allocation)


async def _allocate(
    conn: AsyncConnection, changes: _Changes, request: ApplicationRequest, as_of: date
) -> list[LineAllocation]:
    """Allocate over the account's credits in drawdown order, reading only as many as needed.

    Credits already touched in this transaction (a replaced hold) are used as they stand now.
    """
    loaded: list[CreditRecord] = []
    result: list[LineAllocation] = []
    async for batch in store.candidates_in_order(conn, changes.book.account.seq, as_of):
        loaded += [changes.credits.get(c.id, c) for c in batch]
        candidates = [
            Candidate(
                credit_id=c.id,
                available=c.amounts.available,
                priority=c.priority,
                effective_from=c.effective_from,
                effective_until=c.effective_until,
                created_at=c.created_at,
                applicable_entity_ids=c.applicable_entity_ids,
            )
            for c in loaded
        ]
        result = allocate(request.line_items, candidates, as_of)
        if all(line.remaining == 0 for line in result):
            break
    paid = {credit_id for line in result for credit_id, _ in line.allocations}
    for credit in loaded:
        if credit.id in paid:
            changes.track(credit)
    return result


async def apply(
    conn: AsyncConnection,
    org_seq: int,
    account_id: str,
    request: ApplicationRequest,
    clock: Clock,
) -> ApplicationRecord:
    book = await _open_book(conn, org_seq, account_id, clock)
    now = book.now
    fingerprint = request.fingerprint()
    row = await store.find_application(conn, book.account.seq, request.invoice_id)
    existing = ApplicationRecord.from_row(row, account_id) if row else None
    changes = _Changes(book)
    if existing is not None:
        if existing.status is ApplicationStatus.DEBITED:
            if existing.request_hash == fingerprint:
                return existing
            raise Conflict(
                f"invoice '{request.invoice_id}' is already debited; a debited application "
                "cannot be changed"
            )
        # A held invoice applied again is replaced, even by the same request (credits.md): its
        # credits may have been voided, expired or outranked since.
        if existing.status is ApplicationStatus.HELD:
            await _release_held(conn, changes, existing)

    as_of = request.as_of or book.today
    allocated = await _allocate(conn, changes, request, as_of)
    debit = request.mode is ApplicationMode.DEBIT
    lines = []
    for paid in allocated:
        allocations = tuple(Allocation(credit_id, amount) for credit_id, amount in paid.allocations)
        lines.append(
            AppliedLine(paid.item.entity_id, paid.item.entity_type, paid.item.amount, allocations)
        )
        for allocation in allocations:
            amounts = changes.credits[allocation.credit_id].amounts
            amounts.held = add(amounts.held, allocation.amount)
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
    )
    if debit:
        for line in application.lines:
            for allocation in line.allocations:
                _debit(changes, application, line, allocation)
    changes.record()
    await book.save()
    values = {
        "mode": application.mode.value,
        "status": application.status.value,
        "as_of": application.as_of,
        "request_hash": fingerprint,
        "applied_amount": application.applied,
        "remaining_amount": application.remaining,
        "line_items": application.stored_lines(),
        "updated_at": now,
    }
    if existing is not None:
        await store.update_application(conn, existing.seq, values)
    else:
        await store.insert_application(
            conn,
            {
                **values,
                "org_seq": org_seq,
                "account_seq": book.account.seq,
                "invoice_id": request.invoice_id,
                "created_at": now,
            },
        )
    return application


async def capture(
    conn: AsyncConnection, org_seq: int, account_id: str, invoice_id: str, clock: Clock
) -> ApplicationRecord:
    """Debit what the invoice holds; a debited one is returned unchanged."""
    return await _settle(conn, org_seq, account_id, invoice_id, clock, ApplicationStatus.DEBITED)


async def release(
    conn: AsyncConnection, org_seq: int, account_id: str, invoice_id: str, clock: Clock
) -> ApplicationRecord:
    """Give back what the invoice holds; a released one is returned unchanged."""
    return await _settle(conn, org_seq, account_id, invoice_id, clock, ApplicationStatus.RELEASED)


_CANNOT_SETTLE = {
    ApplicationStatus.DEBITED: "was released; apply it again to hold credits",
    ApplicationStatus.RELEASED: "is already debited; it cannot be released",
}


async def _settle(
    conn: AsyncConnection,
    org_seq: int,
    account_id: str,
    invoice_id: str,
    clock: Clock,
    target: ApplicationStatus,
) -> ApplicationRecord:
    book = await _open_book(conn, org_seq, account_id, clock)
    application = await _find(conn, book.account, invoice_id)
    if application.status is target:
        return application
    if application.status is not ApplicationStatus.HELD:
        raise Conflict(f"invoice '{invoice_id}' {_CANNOT_SETTLE[target]}")
    changes = _Changes(book)
    if target is ApplicationStatus.DEBITED:
        await _load_credits(conn, changes, application)
        for line in application.lines:
            for allocation in line.allocations:
                _debit(changes, application, line, allocation)
    else:
        await _release_held(conn, changes, application)
    changes.record()
    await book.save()
    return await _set_status(conn, application, target, book.now)


async def _set_status(
    conn: AsyncConnection, application: ApplicationRecord, status: ApplicationStatus, now: datetime
) -> ApplicationRecord:
    application.status = status
    application.updated_at = now
    await store.update_application(
        conn, application.seq, {"status": status.value, "updated_at": now}
    )
    return application


async def get(
    conn: AsyncConnection, org_seq: int, account_id: str, invoice_id: str
) -> ApplicationRecord:
    account = await ledger.find_account(conn, org_seq, account_id)
    if account is None:
        raise NotFound(f"account '{account_id}' was not found")
    return await _find(conn, account, invoice_id)


async def list_page(
    conn: AsyncConnection,
    org_seq: int,
    account_id: str,
    *,
    page_size: int,
    next_token: str | None,
) -> ApplicationPage:
    account = await ledger.find_account(conn, org_seq, account_id)
    if account is None:
        raise NotFound(f"account '{account_id}' was not found")
    after = decode_token("applications", next_token)
    rows = await store.page_of_applications(conn, account.seq, after, page_size + 1)
    token = encode_token("applications", rows[page_size - 1].seq) if len(rows) > page_size else None
    return ApplicationPage(
        [ApplicationRecord.from_row(r, account_id) for r in rows[:page_size]], token
    )
