"""A database that is lost, refusing or busy answers 503 with Retry-After, never 500; the
next request after a lost connection succeeds; deadlocks are avoided or retried, never shown."""

import asyncio
import logging
import sqlite3
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import httpx
import psycopg
import pytest
from sqlalchemy.engine import make_url

from drawdown.api.app import create_app
from drawdown.clock import FixedClock
from drawdown.store.database import Database
from tests.conftest import ENGINE, NOW, _admin_dsn, new_key
from tests.helpers import grant_body, make_account
from tests.oracle import books_problems

postgresql_only = pytest.mark.skipif(ENGINE != "postgresql", reason="PostgreSQL's faults")
sqlite_only = pytest.mark.skipif(ENGINE != "sqlite", reason="SQLite's write lock")


@asynccontextmanager
async def api(db: Database, key: str) -> AsyncIterator[httpx.AsyncClient]:
    app = create_app(db, FixedClock(NOW))
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app),
        base_url="http://drawdown.test",
        headers={"Authorization": f"Bearer {key}"},
    ) as http:
        yield http


def assert_unavailable(response: httpx.Response) -> None:
    assert response.status_code == 503, response.text
    assert response.json().keys() == {"message"}
    assert int(response.headers["Retry-After"]) >= 1
    assert "retry" in response.json()["message"]


def customer(customer_id: str) -> dict[str, Any]:
    return {
        "id": customer_id,
        "name": "Customer",
        "primaryEmail": "billing@example.test",
        "address": {"country": "US"},
    }


async def test_a_database_refusing_connections_answers_503() -> None:
    # nothing listens on port 1: the connection is refused at once
    refused = Database("postgresql://postgres@127.0.0.1:1/drawdown", wait_seconds=2)
    try:
        async with api(refused, "dd_any") as http:
            assert_unavailable(await http.get("/customers"))
            assert_unavailable(await http.post("/customers", json=customer("c")))
            assert_unavailable(await http.get("/accounts/a/credit_balance"))
            assert (await http.get("/health")).status_code == 200
            assert_unavailable(await http.get("/ready"))
    finally:
        await refused.dispose()


async def test_a_sqlite_file_that_cannot_be_opened_answers_503(tmp_path: Any) -> None:
    missing = Database(f"sqlite:///{tmp_path}/no/such/dir/drawdown.db", wait_seconds=0.2)
    try:
        async with api(missing, "dd_any") as http:
            assert_unavailable(await http.get("/customers"))
    finally:
        await missing.dispose()


@sqlite_only
async def test_sqlites_write_lock_held_past_the_wait_answers_503_and_changes_nothing(
    database_url: str, db: Database
) -> None:
    key = await new_key(db)
    impatient = Database(database_url, wait_seconds=0.2)
    holder = sqlite3.connect(make_url(database_url).database or "", isolation_level=None)
    try:
        async with api(impatient, key) as http:
            await make_account(http, "acc-1")
            holder.execute("BEGIN IMMEDIATE")
            started = asyncio.get_running_loop().time()
            assert_unavailable(await http.post("/credits", json=grant_body("acc-1", 5)))
            assert_unavailable(await http.post("/customers", json=customer("late")))
            assert asyncio.get_running_loop().time() - started < 5
            holder.execute("ROLLBACK")
            assert (await http.get("/customers/late")).status_code == 404
            balance = (await http.get("/accounts/acc-1/credit_balance")).json()
            assert balance["availableBalance"] == 0
            assert (await http.post("/credits", json=grant_body("acc-1", 5))).status_code == 200
    finally:
        holder.close()
        await impatient.dispose()


@postgresql_only
async def test_an_exhausted_pool_answers_503(database_url: str, db: Database) -> None:
    key = await new_key(db)
    small = Database(database_url, pool_size=1, wait_seconds=0.2)
    try:
        async with api(small, key) as http:
            assert (await http.get("/customers")).status_code == 200
            async with small.engine.connect():  # the only connection, held
                assert_unavailable(await http.get("/customers"))
            assert (await http.get("/customers")).status_code == 200
    finally:
        await small.dispose()


def _terminate_backends(database_url: str) -> int:
    name = make_url(database_url).database
    with psycopg.connect(_admin_dsn(), autocommit=True) as conn:
        row = conn.execute(
            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE datname = %s "
            "AND pid <> pg_backend_pid()",
            (name,),
        ).fetchone()
    return int(row[0]) if row else 0


@postgresql_only
async def test_terminated_backends_are_replaced_and_never_answered_with_an_error(
    database_url: str, db: Database
) -> None:
    key = await new_key(db)
    own = Database(database_url, pool_size=4)
    try:
        async with api(own, key) as http:
            await make_account(http, "acc-1")
            for round_ in range(3):
                # fill both pools with idle connections, then terminate every backend
                warm = await asyncio.gather(
                    *[http.get("/customers") for _ in range(6)],
                    *[http.get("/accounts/acc-1/credit_balance") for _ in range(6)],
                )
                assert {r.status_code for r in warm} == {200}
                assert _terminate_backends(database_url) >= 2
                await asyncio.sleep(0.2)
                granted = await http.post("/credits", json=grant_body("acc-1", 5))
                assert granted.status_code == 200, granted.text
                for path in ["/customers", "/accounts/acc-1/credit_balance", "/accounts/acc-1"]:
                    response = await http.get(path)
                    assert response.status_code == 200, (round_, path, response.text)
            balance = (await http.get("/accounts/acc-1/credit_balance")).json()
            assert balance["availableBalance"] == 15
    finally:
        await own.dispose()


async def test_batches_sharing_idempotency_keys_in_opposite_orders_never_deadlock(
    db: Database,
    clock: FixedClock,
    client: httpx.AsyncClient,
    org_name: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="drawdown.store")
    await make_account(client, "acc-a")
    await make_account(client, "acc-b")
    keys = [f"k-{i}" for i in range(6)]

    def batch(order: list[str]) -> dict[str, Any]:
        return {
            "creditRequests": [
                grant_body("acc-a" if int(k[2:]) % 2 else "acc-b", 1, idempotencyKey=k)
                for k in order
            ]
        }

    bodies = [batch(keys if i % 2 else list(reversed(keys))) for i in range(12)]
    answers = await asyncio.gather(*[client.post("/credits", json=body) for body in bodies])
    assert [a.status_code for a in answers] == [200] * len(bodies), [
        a.text for a in answers if a.status_code != 200
    ]
    ids_by_key: dict[str, set[str]] = {}
    for body, answer in zip(bodies, answers, strict=True):
        sent = [r["idempotencyKey"] for r in body["creditRequests"]]
        got = answer.json()["credits"]
        assert len(got) == len(sent)
        for key, credit in zip(sent, got, strict=True):
            ids_by_key.setdefault(key, set()).add(credit["id"])
    assert all(len(ids) == 1 for ids in ids_by_key.values()), ids_by_key
    for account, expected in (("acc-a", 3), ("acc-b", 3)):
        balance = (await client.get(f"/accounts/{account}/credit_balance")).json()
        assert balance["availableBalance"] == expected
    assert await books_problems(db, clock, org_name) == []
    # the fixed order avoids deadlocks altogether: none had to be retried
    assert not [r for r in caplog.records if "deadlock" in r.getMessage().lower()]


async def test_concurrent_customers_with_one_id_get_one_201_and_409s(
    client: httpx.AsyncClient,
) -> None:
    same = customer(f"same-{uuid.uuid4().hex[:8]}")
    answers = await asyncio.gather(*[client.post("/customers", json=same) for _ in range(8)])
    statuses = sorted(a.status_code for a in answers)
    assert statuses == [201] + [409] * 7, [a.text for a in answers]
    assert all("already exists" in a.json()["message"] for a in answers if a.status_code == 409)


@postgresql_only
async def test_a_row_lock_held_past_the_wait_answers_503_and_changes_nothing(
    database_url: str, db: Database
) -> None:
    key = await new_key(db)
    impatient = Database(database_url, wait_seconds=0.3)
    try:
        async with api(impatient, key) as http:
            account = await make_account(http, "acc-1")
            dsn = make_url(database_url).set(drivername="postgresql")
            with psycopg.connect(dsn.render_as_string(hide_password=False)) as holder:
                holder.execute(
                    "SELECT seq FROM accounts WHERE id = %s FOR UPDATE", (account["id"],)
                )
                assert_unavailable(await http.post("/credits", json=grant_body("acc-1", 5)))
                holder.rollback()
            balance = (await http.get("/accounts/acc-1/credit_balance")).json()
            assert balance["availableBalance"] == 0
            assert (await http.post("/credits", json=grant_body("acc-1", 5))).status_code == 200
    finally:
        await impatient.dispose()
