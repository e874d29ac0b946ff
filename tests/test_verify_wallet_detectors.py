"""Each wallet check `drawdown verify` makes (services/verify_wallets.py and the wallet part of
services/verify_usage.py), proven by tampering with exactly one row, in the style of
tests/test_verify_detectors.py: sound books first, one change through SQL, the very problem
named, the change undone, sound books again."""

import copy
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import httpx
import pytest
from sqlalchemy import Executable, select, update
from sqlalchemy.exc import IntegrityError

from drawdown.clock import FixedClock
from drawdown.store.database import Database
from drawdown.store.tables import credit_applications, usage_events, wallet_entries, wallets
from tests.conftest import ENGINE
from tests.helpers import apply, make_account
from tests.oracle import books_problems

D = Decimal


@dataclass(frozen=True)
class Books:
    """One organization's sound wallet books, on acc-1 (no credits: the wallet pays all):
    top-up 100 (entry 1); inv-h held 20 (2); inv-d debited 30 (3); inv-r held 5 (4) and released
    (5, hidden); usage: 2 events of um.calls at 1 each (6)."""

    org: str
    wallet: str


@pytest.fixture
async def books(client: httpx.AsyncClient, db: Database, clock: FixedClock, org_name: str) -> Books:
    await make_account(client)
    topped = await client.post("/accounts/acc-1/wallet_topup", json={"topupAmount": 100})
    assert topped.status_code == 200
    assert (await apply(client, "inv-h", [20])).status_code == 200
    assert (await apply(client, "inv-d", [30], mode="DEBIT")).status_code == 200
    assert (await apply(client, "inv-r", [5])).status_code == 200
    released = await client.post("/accounts/acc-1/credit_applications/inv-r/release")
    assert released.status_code == 200
    meter = {
        "id": "um.calls",
        "name": "Calls",
        "eventSchemaName": "call",
        "aggregation": "COUNT",
        "creditRate": {"credits": 1, "perQuantity": 1},
    }
    assert (await client.post("/usage_meters", json=meter)).status_code == 201
    events = [
        {"schemaName": "call", "id": f"e-{n}", "timestamp": "2026-11-24T11:00:00Z",
         "accountId": "acc-1"}
        for n in (1, 2)
    ]  # fmt: skip
    assert (await client.post("/ingestBatch", json={"events": events})).status_code == 202
    await client._transport.app.state.applier.drain()  # type: ignore[attr-defined]
    assert await books_problems(db, clock, org_name) == []
    return Books(org_name, topped.json()["id"])


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


async def _wallet(db: Database, books: Books) -> Any:
    async with db.read() as conn:
        return (await conn.execute(select(wallets).where(wallets.c.id == books.wallet))).one()


async def _entry(db: Database, books: Books, number: int) -> Any:
    wallet = await _wallet(db, books)
    query = select(wallet_entries).where(
        wallet_entries.c.wallet_seq == wallet.seq, wallet_entries.c.number == number
    )
    async with db.read() as conn:
        return (await conn.execute(query)).one()


async def _application(db: Database, books: Books, invoice_id: str) -> Any:
    wallet = await _wallet(db, books)
    query = select(credit_applications).where(
        credit_applications.c.account_seq == wallet.account_seq,
        credit_applications.c.invoice_id == invoice_id,
    )
    async with db.read() as conn:
        return (await conn.execute(query)).one()


async def _event(db: Database, books: Books, event_id: str) -> Any:
    wallet = await _wallet(db, books)
    query = select(usage_events).where(
        usage_events.c.org_seq == wallet.org_seq, usage_events.c.id == event_id
    )
    async with db.read() as conn:
        return (await conn.execute(query)).one()


def _set_items(application: Any, items: Any) -> Executable:
    table = credit_applications
    return update(table).where(table.c.seq == application.seq).values(line_items=items)


def _set_wallet(books: Books, **values: Any) -> Executable:
    return update(wallets).where(wallets.c.id == books.wallet).values(**values)


def _set_entry(entry_id: str, **values: Any) -> Executable:
    return update(wallet_entries).where(wallet_entries.c.id == entry_id).values(**values)


def _has(problems: list[str], *fragments: str) -> bool:
    return any(all(fragment in p for fragment in fragments) for p in problems)


async def test_the_sound_books_are_what_the_fixture_says(db: Database, books: Books) -> None:
    shown = [
        (e.number, e.entry_type, e.status, e.amount, e.closing_balance)
        for e in [await _entry(db, books, n) for n in range(1, 7)]
    ]
    assert shown == [
        (1, "CREDITED", "COMPLETED", D(100), D(100)),
        (2, "DEBITED", "ON_HOLD", D(20), D(80)),
        (3, "DEBITED", "COMPLETED", D(30), D(50)),
        (4, "DEBITED", "RELEASED", D(5), D(45)),
        (5, "RELEASED", "COMPLETED", D(5), D(50)),
        (6, "DEBITED", "COMPLETED", D(2), D(48)),
    ]


async def test_a_closing_balance_that_is_not_the_running_balance(
    db: Database, clock: FixedClock, books: Books
) -> None:
    entry = await _entry(db, books, 3)
    do, undo = (
        _set_entry(entry.id, closing_balance=D(51)),
        _set_entry(entry.id, closing_balance=D(50)),
    )
    async with tampered(db, clock, books, do, undo) as problems:
        assert _has(problems, books.wallet, f"entry 3 ({entry.id}) closes at 51", "come to 50")


async def test_a_gap_in_the_entry_numbers(db: Database, clock: FixedClock, books: Books) -> None:
    entry = await _entry(db, books, 6)
    do, undo = _set_entry(entry.id, number=7), _set_entry(entry.id, number=6)
    async with tampered(db, clock, books, do, undo) as problems:
        assert _has(problems, books.wallet, "numbered [1, 2, 3, 4, 5, 7] but it counts 6")


async def test_a_wallet_total_its_entries_do_not_explain(
    db: Database, clock: FixedClock, books: Books
) -> None:
    for column, wrong, right in (("topped_up", 101, 100), ("consumed", 33, 32), ("held", 21, 20)):
        do = _set_wallet(books, **{column: D(wrong)})
        undo = _set_wallet(books, **{column: D(right)})
        async with tampered(db, clock, books, do, undo) as problems:
            assert _has(problems, books.wallet, "but its entries total 100 CREDITED, 32 DEBITED")


async def test_a_changed_entry_amount_moves_the_running_balance(
    db: Database, clock: FixedClock, books: Books
) -> None:
    entry = await _entry(db, books, 1)
    do, undo = _set_entry(entry.id, amount=D(99)), _set_entry(entry.id, amount=D(100))
    async with tampered(db, clock, books, do, undo) as problems:
        assert _has(problems, books.wallet, "entry 1", "closes at 100", "come to 99")
        assert _has(problems, books.wallet, "toppedUp 100", "total 99 CREDITED")
        assert _has(problems, books.wallet, "balance 48 but its entries come to 47")


async def test_a_release_that_does_not_give_back_what_was_held(
    db: Database, clock: FixedClock, books: Books
) -> None:
    given_back = await _entry(db, books, 5)
    do, undo = _set_entry(given_back.id, amount=D(6)), _set_entry(given_back.id, amount=D(5))
    async with tampered(db, clock, books, do, undo) as problems:
        assert _has(problems, books.wallet, "released holds total 5 but the amounts given back")


async def test_a_negative_balance(db: Database, clock: FixedClock, books: Books) -> None:
    do, undo = _set_wallet(books, consumed=D(90)), _set_wallet(books, consumed=D(32))
    if ENGINE == "postgresql":
        with pytest.raises(IntegrityError, match="balance_not_negative"):
            await _run(db, do)
        return
    async with tampered(db, clock, books, do, undo) as problems:
        assert _has(problems, books.wallet, "a total is negative (balance -10)")


async def test_an_entry_amount_that_is_not_positive_is_refused_by_the_database(
    db: Database, books: Books
) -> None:
    entry = await _entry(db, books, 1)
    with pytest.raises(IntegrityError, match="amount_positive"):
        await _run(db, _set_entry(entry.id, amount=D(0)))


async def test_a_hold_entry_no_held_application_names(
    db: Database, clock: FixedClock, books: Books
) -> None:
    entry = await _entry(db, books, 2)
    do, undo = _set_entry(entry.id, invoice_id="inv-x"), _set_entry(entry.id, invoice_id="inv-h")
    async with tampered(db, clock, books, do, undo) as problems:
        assert _has(problems, "invoice 'inv-h'", "share of 20", "ON_HOLD 20 for invoice 'inv-x'")


async def test_a_share_naming_no_entry_and_an_entry_no_share_names(
    db: Database, clock: FixedClock, books: Books
) -> None:
    application = await _application(db, books, "inv-h")
    items = copy.deepcopy(application.line_items)
    entry_id = items[0]["allocations"][0]["entryId"]
    items[0]["allocations"][0]["entryId"] = "wtxn.none"
    do, undo = _set_items(application, items), _set_items(application, application.line_items)
    async with tampered(db, clock, books, do, undo) as problems:
        assert _has(problems, "invoice 'inv-h'", "names entry wtxn.none, which is not there")
        assert _has(problems, books.wallet, f"({entry_id}) is ON_HOLD for invoice 'inv-h'")


@pytest.mark.parametrize(("number", "status"), [(2, "COMPLETED"), (3, "ON_HOLD"), (4, "ON_HOLD")])
async def test_an_entry_whose_status_is_not_its_applications(
    db: Database, clock: FixedClock, books: Books, number: int, status: str
) -> None:
    entry = await _entry(db, books, number)
    do, undo = _set_entry(entry.id, status=status), _set_entry(entry.id, status=entry.status)
    async with tampered(db, clock, books, do, undo) as problems:
        assert _has(problems, f"invoice '{entry.invoice_id}'", f"entry {entry.id} is {status}")


async def test_an_application_whose_wallet_share_is_not_its_entry(
    db: Database, clock: FixedClock, books: Books
) -> None:
    application = await _application(db, books, "inv-d")
    items = copy.deepcopy(application.line_items)
    items[0]["allocations"][0]["amount"] = "29"
    do, undo = _set_items(application, items), _set_items(application, application.line_items)
    async with tampered(db, clock, books, do, undo) as problems:
        assert _has(problems, "invoice 'inv-d'", "DEBITED with a wallet share of 29", "COMPLETED")


async def test_a_usage_entry_its_events_do_not_explain(
    db: Database, clock: FixedClock, books: Books
) -> None:
    entry = await _entry(db, books, 6)
    event = await _event(db, books, "e-2")
    results = copy.deepcopy(event.results)
    results[0]["wallet"][1] = "0.5"
    do = update(usage_events).where(usage_events.c.seq == event.seq).values(results=results)
    undo = update(usage_events).where(usage_events.c.seq == event.seq).values(results=event.results)
    async with tampered(db, clock, books, do, undo) as problems:
        assert _has(problems, f"usage line {entry.id} on wallet {books.wallet}", "drew 1.5")
        assert _has(problems, "usage event 'e-2'", "the wallet 0.5", "cost 1")


async def test_an_event_paid_on_an_entry_of_another_kind(
    db: Database, clock: FixedClock, books: Books
) -> None:
    hold = await _entry(db, books, 3)
    event = await _event(db, books, "e-1")
    results = copy.deepcopy(event.results)
    results[0]["wallet"][2] = hold.id
    do = update(usage_events).where(usage_events.c.seq == event.seq).values(results=results)
    undo = update(usage_events).where(usage_events.c.seq == event.seq).values(results=event.results)
    async with tampered(db, clock, books, do, undo) as problems:
        assert _has(problems, "usage event 'e-1'", f"entry {hold.id}", "not a usage entry")
