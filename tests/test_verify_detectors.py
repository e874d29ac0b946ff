"""Each check `drawdown verify` makes, proven by tampering with exactly one row.

Every test starts from sound books (verify finds nothing), changes one row through SQL, asserts
verify names that very problem, then undoes the change and asserts the books are sound again,
so the session's database is left as it was."""

import os
import subprocess
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import httpx
import pytest
from sqlalchemy import Executable, delete, insert, select, update
from sqlalchemy.exc import IntegrityError

from drawdown.clock import FixedClock
from drawdown.store.database import Database
from drawdown.store.tables import accounts, credit_applications, credit_transactions, credits
from tests.conftest import ENGINE
from tests.helpers import apply, grant, make_account
from tests.live_server import DRAWDOWN
from tests.oracle import books_problems


@dataclass(frozen=True)
class Books:
    """One organization's sound books: credits in every state, on two accounts."""

    org: str
    active: str  # 100: 30 debited for inv-d, 20 held for inv-h
    voided: str  # 40, voided untouched
    expired: str  # 25, granted back-dated, so CREDITED then EXPIRED
    consumed: str  # 10, debited whole for inv-all
    future: str  # 60, effective from next month
    other: str  # 5 on acc-2


@pytest.fixture
async def books(client: httpx.AsyncClient, db: Database, clock: FixedClock, org_name: str) -> Books:
    await make_account(client, "acc-1")
    await make_account(client, "acc-2")
    consumed = await grant(client, amount=10, priority=0)
    debited = await apply(client, "inv-all", [10], mode="DEBIT")
    assert debited.status_code == 200, debited.text
    active = await grant(client, amount=100, priority=1)
    assert (await apply(client, "inv-d", [30], mode="DEBIT")).status_code == 200
    assert (await apply(client, "inv-h", [20], mode="HOLD")).status_code == 200
    voided = await grant(client, amount=40, priority=2)
    assert (await client.post(f"/credits/{voided['id']}/void")).status_code == 200
    expired = await grant(
        client, amount=25, effectiveFrom="2026-01-01", effectiveUntil="2026-02-01"
    )
    future = await grant(client, amount=60, effectiveFrom="2026-12-01")
    other = await grant(client, "acc-2", amount=5)
    assert await books_problems(db, clock, org_name) == []
    return Books(
        org_name,
        active["id"],
        voided["id"],
        expired["id"],
        consumed["id"],
        future["id"],
        other["id"],
    )


async def _run(db: Database, statement: Executable) -> None:
    async with db.write() as conn:
        result = await conn.execute(statement)
        assert getattr(result, "rowcount", 1) == 1, "the tampering must touch exactly one row"


@asynccontextmanager
async def tampered(
    db: Database, clock: FixedClock, books: Books, do: Executable, undo: Executable
) -> AsyncIterator[list[str]]:
    await _run(db, do)
    try:
        yield await books_problems(db, clock, books.org)
    finally:
        await _run(db, undo)
    assert await books_problems(db, clock, books.org) == []


async def _credit(db: Database, credit_id: str) -> Any:
    async with db.read() as conn:
        return (await conn.execute(select(credits).where(credits.c.id == credit_id))).one()


async def _line(db: Database, credit_id: str, kind: str) -> Any:
    seq = (await _credit(db, credit_id)).seq
    query = select(credit_transactions).where(
        credit_transactions.c.credit_seq == seq, credit_transactions.c.transaction_type == kind
    )
    async with db.read() as conn:
        return (await conn.execute(query)).first()


async def _application(db: Database, books: Books, invoice: str) -> Any:
    account_seq = (await _credit(db, books.active)).account_seq
    query = select(credit_applications).where(
        credit_applications.c.account_seq == account_seq,
        credit_applications.c.invoice_id == invoice,
    )
    async with db.read() as conn:
        return (await conn.execute(query)).one()


def _set_credit(credit_id: str, **values: Any) -> Executable:
    return update(credits).where(credits.c.id == credit_id).values(**values)


def _set_line(line_id: str, **values: Any) -> Executable:
    return update(credit_transactions).where(credit_transactions.c.id == line_id).values(**values)


def _set_application(seq: int, **values: Any) -> Executable:
    return update(credit_applications).where(credit_applications.c.seq == seq).values(**values)


def _has(problems: list[str], *fragments: str) -> bool:
    return any(all(fragment in p for fragment in fragments) for p in problems)


# -- each credit against its ledger lines ------------------------------------------------------


async def test_a_changed_credited_line(db: Database, clock: FixedClock, books: Books) -> None:
    line = await _line(db, books.other, "CREDITED")
    do, undo = _set_line(line.id, amount=Decimal(6)), _set_line(line.id, amount=Decimal(5))
    async with tampered(db, clock, books, do, undo) as problems:
        assert _has(problems, books.other, "CREDITED lines total 6 but its creditAmount is 5")


async def test_a_missing_credited_line(db: Database, clock: FixedClock, books: Books) -> None:
    line = await _line(db, books.other, "CREDITED")
    do = delete(credit_transactions).where(credit_transactions.c.id == line.id)
    undo = insert(credit_transactions).values(**line._asdict())
    async with tampered(db, clock, books, do, undo) as problems:
        assert _has(problems, books.other, "CREDITED lines total 0 but its creditAmount is 5")


async def test_a_changed_debited_line(db: Database, clock: FixedClock, books: Books) -> None:
    line = await _line(db, books.active, "DEBITED")
    do, undo = _set_line(line.id, amount=Decimal(29)), _set_line(line.id, amount=Decimal(30))
    async with tampered(db, clock, books, do, undo) as problems:
        assert _has(problems, books.active, "DEBITED lines total 29 but its consumedAmount is 30")
        assert _has(problems, books.active, "invoice 'inv-d'", "total 29", "allocate 30")


async def test_a_changed_consumed_amount(db: Database, clock: FixedClock, books: Books) -> None:
    do = _set_credit(books.active, consumed_amount=Decimal(31))
    undo = _set_credit(books.active, consumed_amount=Decimal(30))
    async with tampered(db, clock, books, do, undo) as problems:
        assert _has(problems, books.active, "DEBITED lines total 30 but its consumedAmount is 31")


async def test_a_changed_expired_amount(db: Database, clock: FixedClock, books: Books) -> None:
    do = _set_credit(books.expired, expired_amount=Decimal(24))
    undo = _set_credit(books.expired, expired_amount=Decimal(25))
    async with tampered(db, clock, books, do, undo) as problems:
        assert _has(problems, books.expired, "EXPIRED lines total 25 but its expired amount is 24")


async def test_a_changed_voided_line(db: Database, clock: FixedClock, books: Books) -> None:
    line = await _line(db, books.voided, "VOIDED")
    do, undo = _set_line(line.id, amount=Decimal(39)), _set_line(line.id, amount=Decimal(40))
    async with tampered(db, clock, books, do, undo) as problems:
        assert _has(problems, books.voided, "VOIDED lines total 39 but its voided amount is 40")


async def test_a_line_moved_to_another_accounts_credit(
    db: Database, clock: FixedClock, books: Books
) -> None:
    line = await _line(db, books.voided, "VOIDED")
    other_seq = (await _credit(db, books.other)).seq
    do = _set_line(line.id, credit_seq=other_seq)
    undo = _set_line(line.id, credit_seq=line.credit_seq)
    async with tampered(db, clock, books, do, undo) as problems:
        assert _has(problems, books.other, "VOIDED lines total 40 but its voided amount is 0")
        assert _has(problems, books.voided, "VOIDED lines total 0 but its voided amount is 40")


async def test_a_debited_line_for_the_wrong_invoice(
    db: Database, clock: FixedClock, books: Books
) -> None:
    """Every total still adds up; only the applications show the line is not what it says."""
    line = await _line(db, books.active, "DEBITED")
    do = _set_line(line.id, invoice_id="inv-x")
    undo = _set_line(line.id, invoice_id=line.invoice_id)
    async with tampered(db, clock, books, do, undo) as problems:
        assert _has(problems, books.active, "invoice 'inv-x'", "total 30", "allocate 0")
        assert _has(problems, books.active, "invoice 'inv-d'", "total 0", "allocate 30")


# -- holds and applications ---------------------------------------------------------------------


async def test_a_hold_that_no_application_holds(
    db: Database, clock: FixedClock, books: Books
) -> None:
    do = _set_credit(books.active, hold_amount=Decimal(25))
    undo = _set_credit(books.active, hold_amount=Decimal(20))
    async with tampered(db, clock, books, do, undo) as problems:
        assert _has(problems, books.active, "held applications hold 20 but its holdAmount is 25")


async def test_a_released_application_still_held(
    db: Database, clock: FixedClock, books: Books
) -> None:
    application = await _application(db, books, "inv-h")
    do = _set_application(application.seq, status="RELEASED")
    undo = _set_application(application.seq, status="HELD")
    async with tampered(db, clock, books, do, undo) as problems:
        assert _has(problems, books.active, "held applications hold 0 but its holdAmount is 20")


async def test_more_held_than_the_credit_has(db: Database, clock: FixedClock, books: Books) -> None:
    do = _set_credit(books.active, hold_amount=Decimal(80))
    undo = _set_credit(books.active, hold_amount=Decimal(20))
    if ENGINE == "postgresql":
        with pytest.raises(IntegrityError, match="parts_within_amount"):
            await _run(db, do)
        return
    async with tampered(db, clock, books, do, undo) as problems:
        assert _has(problems, books.active, "available is negative (-10)")


async def test_an_application_whose_sums_are_wrong(
    db: Database, clock: FixedClock, books: Books
) -> None:
    application = await _application(db, books, "inv-d")
    do = _set_application(application.seq, applied_amount=Decimal(31))
    undo = _set_application(application.seq, applied_amount=Decimal(30))
    async with tampered(db, clock, books, do, undo) as problems:
        assert _has(problems, "invoice 'inv-d'", "appliedAmount 31", "apply 30 of 30")


async def test_a_line_item_paid_more_than_its_amount(
    db: Database, clock: FixedClock, books: Books
) -> None:
    application = await _application(db, books, "inv-h")
    items = application.line_items
    shrunk = [{**items[0], "amount": "15"}]
    do = _set_application(application.seq, line_items=shrunk)
    undo = _set_application(application.seq, line_items=items)
    async with tampered(db, clock, books, do, undo) as problems:
        assert _has(problems, "invoice 'inv-h'", "is paid 20, more than its amount 15")


async def test_an_application_paid_by_another_accounts_credit(
    db: Database, clock: FixedClock, books: Books
) -> None:
    application = await _application(db, books, "inv-h")
    items = application.line_items
    moved = [{**items[0], "allocations": [{"creditId": books.other, "amount": "20"}]}]
    do = _set_application(application.seq, line_items=moved)
    undo = _set_application(application.seq, line_items=items)
    async with tampered(db, clock, books, do, undo) as problems:
        assert _has(problems, "invoice 'inv-h'", f"allocates credit {books.other} of another")


# -- statuses -----------------------------------------------------------------------------------


async def test_consumed_but_only_partly(db: Database, clock: FixedClock, books: Books) -> None:
    do, undo = (
        _set_credit(books.active, status="CONSUMED"),
        _set_credit(books.active, status="ACTIVE"),
    )
    async with tampered(db, clock, books, do, undo) as problems:
        assert _has(problems, books.active, "CONSUMED but only part of it is consumed")


async def test_active_but_fully_consumed(db: Database, clock: FixedClock, books: Books) -> None:
    do = _set_credit(books.consumed, status="ACTIVE")
    undo = _set_credit(books.consumed, status="CONSUMED")
    async with tampered(db, clock, books, do, undo) as problems:
        assert _has(problems, books.consumed, "ACTIVE but fully consumed")


async def test_closed_with_something_available(
    db: Database, clock: FixedClock, books: Books
) -> None:
    do, undo = _set_credit(books.other, status="VOIDED"), _set_credit(books.other, status="ACTIVE")
    async with tampered(db, clock, books, do, undo) as problems:
        assert _has(problems, books.other, "VOIDED but 5 is available")


async def test_expired_before_its_day(db: Database, clock: FixedClock, books: Books) -> None:
    do = _set_credit(books.expired, effective_until=None)
    undo = _set_credit(
        books.expired, effective_until=(await _credit(db, books.expired)).effective_until
    )
    async with tampered(db, clock, books, do, undo) as problems:
        assert _has(problems, books.expired, "EXPIRED before the day after its effectiveUntil")


async def test_a_credit_naming_another_account(
    db: Database, clock: FixedClock, books: Books
) -> None:
    do, undo = (
        _set_credit(books.other, account_id="acc-1"),
        _set_credit(books.other, account_id="acc-2"),
    )
    async with tampered(db, clock, books, do, undo) as problems:
        assert _has(problems, books.other, "belongs to account acc-2 but names account acc-1")


# -- the account's kept balance -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("column", "right"),
    [
        ("bal_active_amount", 160),  # the active 100 and the future 60
        ("bal_applicable_left", 70),
        ("bal_applicable_held", 20),
        ("bal_inapplicable_left", 60),
    ],
)
async def test_each_balance_field(
    db: Database, clock: FixedClock, books: Books, column: str, right: int
) -> None:
    async with db.read() as conn:
        kept = (
            await conn.execute(
                select(accounts).where(
                    accounts.c.id == "acc-1",
                    accounts.c.org_seq == (await _credit(db, books.active)).org_seq,
                )
            )
        ).one()
    assert getattr(kept, column) == right
    where = accounts.c.seq == kept.seq
    do = update(accounts).where(where).values({column: Decimal(right) + Decimal("0.0000000001")})
    undo = update(accounts).where(where).values({column: Decimal(right)})
    async with tampered(db, clock, books, do, undo) as problems:
        assert len(problems) == 1
        assert _has(problems, "account acc-1: kept balance", "but its credits add up to")


# -- the command --------------------------------------------------------------------------------


async def test_the_command_exits_1_and_names_the_problem(
    db: Database, clock: FixedClock, books: Books, database_url: str
) -> None:
    do = _set_credit(books.active, consumed_amount=Decimal(31))
    undo = _set_credit(books.active, consumed_amount=Decimal(30))
    await _run(db, do)
    try:
        env = {**os.environ, "DRAWDOWN_DATABASE_URL": database_url}
        done = subprocess.run([DRAWDOWN, "verify"], env=env, capture_output=True, text=True)
    finally:
        await _run(db, undo)
    assert done.returncode == 1, done.stdout + done.stderr
    problem = f"credit {books.active}: DEBITED lines total 30 but its consumedAmount is 31"
    assert problem in done.stdout.splitlines()
    assert "mismatches" in done.stderr
