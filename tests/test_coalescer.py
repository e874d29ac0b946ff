"""Coalescing: concurrent writes share transactions, each keeps its own answer and error, and
nothing is answered before it is committed. On both engines, through the API."""

import asyncio
import uuid
from datetime import timedelta
from decimal import Decimal
from typing import Any

import httpx
import psycopg
import pytest
from sqlalchemy import text

from drawdown.clock import FixedClock
from drawdown.store.database import Database
from tests.conftest import ENGINE
from tests.helpers import apply, decimal_json, grant, grant_body, make_account
from tests.oracle import assert_books_balance


def _coalescer(client: httpx.AsyncClient) -> Any:
    transport = client._transport
    assert isinstance(transport, httpx.ASGITransport)
    return transport.app.state.writes.coalescer  # type: ignore[attr-defined]


async def _balance(client: httpx.AsyncClient, account_id: str) -> Decimal:
    response = await client.get(f"/accounts/{account_id}/credit_balance")
    assert response.status_code == 200, response.text
    return Decimal(str(decimal_json(response)["availableBalance"]))


async def test_concurrent_debits_on_many_accounts_share_transactions(
    client: httpx.AsyncClient, db: Database, clock: FixedClock, org_name: str
) -> None:
    accounts = [f"acc-{n}" for n in range(8)]
    for account in accounts:
        await make_account(client, account)
        await grant(client, account, 100)
    coalescer = _coalescer(client)
    groups_before, writes_before = coalescer.groups, coalescer.writes

    answers = await asyncio.gather(
        *(
            apply(client, f"inv-{n}", [0.01], mode="DEBIT", account_id=accounts[n % 8])
            for n in range(80)
        )
    )

    assert [a.status_code for a in answers] == [200] * 80
    assert coalescer.writes - writes_before == 80
    assert coalescer.groups - groups_before < 80, "no two writes ever shared a transaction"
    for account in accounts:
        assert await _balance(client, account) == Decimal("99.90")
    await assert_books_balance(db, clock, org_name)


async def test_many_debits_on_one_account_are_exact(
    client: httpx.AsyncClient, db: Database, clock: FixedClock, org_name: str
) -> None:
    await make_account(client)
    await grant(client, "acc-1", 1)
    answers = await asyncio.gather(
        *(apply(client, f"inv-{n}", [0.03], mode="DEBIT") for n in range(40))
    )
    assert [a.status_code for a in answers] == [200] * 40
    paid = sum(Decimal(str(decimal_json(a)["appliedAmount"])) for a in answers)
    assert paid == Decimal("1.00")  # 33 paid in full, one paid 0.01, the rest uncovered
    assert await _balance(client, "acc-1") == 0
    await assert_books_balance(db, clock, org_name)


async def test_a_refused_write_fails_alone_in_its_group(
    client: httpx.AsyncClient, db: Database, clock: FixedClock, org_name: str
) -> None:
    await make_account(client)
    await grant(client, "acc-1", 100, idempotencyKey="key-1")
    good = [apply(client, f"inv-{n}", [1], mode="DEBIT") for n in range(10)]
    bad = [
        apply(client, "inv-x", [1], mode="DEBIT", account_id="no-such-account"),
        client.post("/credits", json=grant_body("acc-1", 5, idempotencyKey="key-1")),
        client.post("/credits/no-such-credit/void"),
        client.post("/accounts/acc-1/credit_applications/inv-none/capture"),
    ]
    answers = await asyncio.gather(*good, *bad)

    assert [a.status_code for a in answers[:10]] == [200] * 10
    assert [a.status_code for a in answers[10:]] == [404, 409, 404, 404]
    assert "no-such-account" in answers[10].json()["message"]
    assert await _balance(client, "acc-1") == 90
    await assert_books_balance(db, clock, org_name)


async def test_a_write_the_database_refuses_fails_alone(
    client: httpx.AsyncClient, db: Database, clock: FixedClock, org_name: str
) -> None:
    """A write whose save the database refuses (here a trigger stands in for any constraint
    the rules did not foresee) splits its group: the others are committed."""
    await make_account(client)
    await grant(client, "acc-1", 100)
    async with db.write() as conn:
        if ENGINE == "postgresql":
            await conn.execute(
                text(
                    "CREATE OR REPLACE FUNCTION refuse_poison() RETURNS trigger AS $$ BEGIN "
                    "IF NEW.invoice_id = 'poison' THEN RAISE EXCEPTION 'poisoned'; END IF; "
                    "RETURN NEW; END $$ LANGUAGE plpgsql"
                )
            )
            await conn.execute(
                text(
                    "CREATE TRIGGER refuse_poison BEFORE INSERT ON credit_applications "
                    "FOR EACH ROW EXECUTE FUNCTION refuse_poison()"
                )
            )
        else:
            await conn.execute(
                text(
                    "CREATE TRIGGER refuse_poison BEFORE INSERT ON credit_applications "
                    "WHEN NEW.invoice_id = 'poison' BEGIN SELECT RAISE(ABORT, 'poisoned'); END"
                )
            )
    try:
        # a client that does not raise the app's exceptions: the poisoned write is a 500
        transport = httpx.ASGITransport(app=client._transport.app, raise_app_exceptions=False)  # type: ignore[attr-defined]
        async with httpx.AsyncClient(
            transport=transport, base_url=str(client.base_url), headers=client.headers
        ) as tolerant:
            answers = await asyncio.gather(
                *(apply(tolerant, f"inv-{n}", [1], mode="DEBIT") for n in range(5)),
                apply(tolerant, "poison", [1], mode="DEBIT"),
                *(apply(tolerant, f"inv-{n}", [1], mode="DEBIT") for n in range(5, 10)),
            )
    finally:
        async with db.write() as conn:
            await conn.execute(
                text(
                    "DROP TRIGGER refuse_poison"
                    + (" ON credit_applications" if ENGINE == "postgresql" else "")
                )
            )
    statuses = [a.status_code for a in answers]
    assert statuses[:5] + statuses[6:] == [200] * 10
    assert statuses[5] == 500
    assert await _balance(client, "acc-1") == 90
    missing = await client.get("/accounts/acc-1/credit_applications/poison")
    assert missing.status_code == 404
    await assert_books_balance(db, clock, org_name)


async def test_every_answer_comes_after_its_commit(
    client: httpx.AsyncClient, database_url: str
) -> None:
    """As soon as an answer arrives, another connection already sees what it wrote."""
    await make_account(client)
    await grant(client, "acc-1", 1000)
    seen_uncommitted: list[str] = []
    run = uuid.uuid4().hex  # invoice ids no other test uses

    async def debit_and_look(n: int) -> None:
        invoice = f"inv-{run}-{n}"
        response = await apply(client, invoice, [1], mode="DEBIT")
        assert response.status_code == 200, response.text
        if not await _committed(database_url, invoice):
            seen_uncommitted.append(invoice)

    await asyncio.gather(*(debit_and_look(n) for n in range(30)))
    assert seen_uncommitted == []


async def _committed(database_url: str, invoice_id: str) -> bool:
    query = "SELECT count(*) FROM credit_applications WHERE invoice_id = %s"
    if ENGINE == "postgresql":
        dsn = database_url.replace("postgresql+psycopg", "postgresql")
        async with await psycopg.AsyncConnection.connect(dsn) as conn:
            row = await (await conn.execute(query, (invoice_id,))).fetchone()
    else:
        import sqlite3

        path = database_url.removeprefix("sqlite:///")
        with sqlite3.connect(path) as conn:
            row = conn.execute(query.replace("%s", "?"), (invoice_id,)).fetchone()
    return bool(row and row[0] == 1)


async def test_a_caller_that_goes_away_does_not_cancel_its_write(
    client: httpx.AsyncClient, db: Database, clock: FixedClock, org_name: str
) -> None:
    await make_account(client)
    await grant(client, "acc-1", 100)
    task = asyncio.create_task(apply(client, "inv-gone", [7], mode="DEBIT"))
    await asyncio.sleep(0)  # the request is on its way
    others = [apply(client, f"inv-{n}", [1], mode="DEBIT") for n in range(5)]
    task.cancel()
    answers = await asyncio.gather(*others)
    assert [a.status_code for a in answers] == [200] * 5
    await asyncio.sleep(0.2)
    # the cancelled request's write either never reached a group or was committed whole
    gone = await client.get("/accounts/acc-1/credit_applications/inv-gone")
    expected = Decimal(95) - (7 if gone.status_code == 200 else 0)
    assert await _balance(client, "acc-1") == expected
    await assert_books_balance(db, clock, org_name)


@pytest.mark.parametrize("size", [1, 50])
async def test_grant_batches_coalesce_with_single_grants(
    client: httpx.AsyncClient, db: Database, clock: FixedClock, org_name: str, size: int
) -> None:
    await make_account(client, "acc-a")
    await make_account(client, "acc-b")
    batch = {"creditRequests": [grant_body("acc-a", 0.5) for _ in range(size)]}
    answers = await asyncio.gather(
        client.post("/credits", json=batch),
        *(client.post("/credits", json=grant_body("acc-b", 0.25)) for _ in range(20)),
    )
    assert [a.status_code for a in answers] == [200] * 21
    assert await _balance(client, "acc-a") == Decimal("0.5") * size
    assert await _balance(client, "acc-b") == 5
    await assert_books_balance(db, clock, org_name)


async def test_grants_adding_to_a_balance_race_debits_on_it_exactly(
    client: httpx.AsyncClient, db: Database, clock: FixedClock, org_name: str
) -> None:
    """Grants to one account add to its balance without locking it to load; debits on it
    lock it. Interleaved, the balance still adds up to the cent."""
    await make_account(client)
    await grant(client, "acc-1", 10)
    answers = await asyncio.gather(
        *(client.post("/credits", json=grant_body("acc-1", 0.5)) for _ in range(30)),
        *(apply(client, f"inv-{n}", [0.25], mode="DEBIT") for n in range(30)),
        *(client.post("/credits", json=grant_body("acc-1", 0.5)) for _ in range(30)),
    )
    assert [a.status_code for a in answers] == [200] * 90
    paid = sum(Decimal(str(decimal_json(a)["appliedAmount"])) for a in answers[30:60])
    assert paid == Decimal("7.5")
    assert await _balance(client, "acc-1") == Decimal(10) + Decimal(30) - Decimal("7.5")
    await assert_books_balance(db, clock, org_name)


async def test_a_grant_to_an_account_behind_the_day_is_counted_under_its_lock(
    client: httpx.AsyncClient, db: Database, clock: FixedClock, org_name: str
) -> None:
    """A grant group finds a credit past its last day: it runs again under the account's lock,
    expires the credit and counts the new one."""
    await make_account(client)
    await grant(client, "acc-1", 40, effectiveUntil="2026-11-24")
    clock.advance(timedelta(days=1))
    answers = await asyncio.gather(
        *(client.post("/credits", json=grant_body("acc-1", 1)) for _ in range(5))
    )
    assert [a.status_code for a in answers] == [200] * 5
    assert await _balance(client, "acc-1") == 5
    await assert_books_balance(db, clock, org_name)
