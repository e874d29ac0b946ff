"""A database that stops answering: reads and the readiness probe answer 503 with Retry-After
soon after the database wait (api/read_deadline.py), instead of waiting for as long as it stays
silent, and so does a money write (the write store's command timeout), which is then not
applied; once the database answers again, so does every route.

The database's backends are stopped with SIGSTOP: their connections stay open and statements
sent on them get no reply, as from a hung server. That needs root (as in CI); the server's pools
hold one connection each, so every statement goes to a stopped backend."""

import contextlib
import os
import signal
import time
from collections.abc import Iterator

import httpx
import psycopg
import pytest
from sqlalchemy.engine import make_url

from drawdown.store.database import SILENCE_MARGIN_SECONDS
from tests.conftest import ENGINE, _admin_dsn
from tests.live_server import create_key, live_server

pytestmark = pytest.mark.skipif(ENGINE != "postgresql", reason="stops PostgreSQL's backends")

WAIT_SECONDS = 4
# the answer comes at the wait and the margin (Database.silent_after), give or take a loaded
# machine; a connection released as it is, not cut off, would add another wait
ANSWERED_WITHIN_SECONDS = WAIT_SECONDS + SILENCE_MARGIN_SECONDS + 2
RECOVERED_WITHIN_SECONDS = 20

READS = [
    "/ready",
    "/accounts/acc-hang/credit_balance",  # api/endpoints.py's plain route
    "/credits?account_id=acc-hang",  # a FastAPI route (api/jsonio.DecimalRoute)
]


@contextlib.contextmanager
def silent(database_url: str) -> Iterator[None]:
    """Every backend of the database stopped until the block ends."""
    if os.geteuid() != 0:
        pytest.skip("stopping PostgreSQL's backends needs root")
    name = make_url(database_url).database
    with psycopg.connect(_admin_dsn(), autocommit=True) as admin:
        rows = admin.execute(
            "SELECT pid FROM pg_stat_activity WHERE datname = %s", (name,)
        ).fetchall()
    pids = [pid for (pid,) in rows]
    assert pids, "the server holds no connection to stop"
    for pid in pids:
        os.kill(pid, signal.SIGSTOP)
    try:
        yield
    finally:
        for pid in pids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGCONT)


def answered_ok(http: httpx.Client, path: str) -> bool:
    try:
        return http.get(path, timeout=5).status_code == 200
    except httpx.TimeoutException:
        return False


@contextlib.contextmanager
def server_with_account(url: str) -> Iterator[httpx.Client]:
    """A server whose pools hold one connection each, and an account acc-hang."""
    env = {"DRAWDOWN_DATABASE_WAIT": str(WAIT_SECONDS), "DRAWDOWN_POOL_SIZE": "1"}
    key = create_key(url, "hang")
    with live_server(url, env=env) as server:
        headers = {"Authorization": f"Bearer {key}"}
        with httpx.Client(base_url=server.base_url, headers=headers) as http:
            made = http.post(
                "/customers",
                json={
                    "id": "cust-hang",
                    "name": "Hang customer",
                    "primaryEmail": "hang@example.test",
                    "address": {},
                    "account": {"id": "acc-hang", "name": "Hang account"},
                },
            )
            assert made.status_code == 201, made.text
            yield http


def answered_again(http: httpx.Client) -> None:
    """Every read answers again: nothing abandoned left a pool broken."""
    deadline = time.monotonic() + RECOVERED_WITHIN_SECONDS
    for read in READS:
        while not answered_ok(http, read):
            assert time.monotonic() < deadline, f"{read} did not answer again"
            time.sleep(0.2)


def assert_refused_in_time(answer: httpx.Response, took: float) -> None:
    assert answer.status_code == 503, answer.text
    assert answer.headers["retry-after"] == "1"
    assert set(answer.json()) == {"message"}
    assert took < ANSWERED_WITHIN_SECONDS


@pytest.mark.parametrize("path", READS)
def test_a_read_of_a_silent_database_answers_503_soon_after_the_wait(
    own_url: str, path: str
) -> None:
    with server_with_account(own_url) as http:
        for read in READS:  # every pool has its connection open
            assert http.get(read).status_code == 200
        with silent(own_url):
            started = time.monotonic()
            answer = http.get(path, timeout=ANSWERED_WITHIN_SECONDS + 10)
            took = time.monotonic() - started
        assert_refused_in_time(answer, took)
        answered_again(http)


def test_a_money_write_to_a_silent_database_answers_503_and_is_not_applied(own_url: str) -> None:
    grant = {
        "accountId": "acc-hang",
        "purpose": "PREPAID_CREDIT",
        "effectiveFrom": "2026-01-01",
        "creditAmount": 10,
        "priority": 1,
    }
    with server_with_account(own_url) as http:
        assert http.post("/credits", json=grant).status_code == 200  # the write store's pool
        assert http.get("/accounts/acc-hang/credit_balance").status_code == 200
        with silent(own_url):
            started = time.monotonic()
            answer = http.post("/credits", json=grant, timeout=ANSWERED_WITHIN_SECONDS + 10)
            took = time.monotonic() - started
        assert_refused_in_time(answer, took)
        assert "may or may not" not in answer.json()["message"]  # no COMMIT was sent
        answered_again(http)
        credits = http.get("/credits?account_id=acc-hang").json()["data"]
        assert [credit["creditAmount"] for credit in credits] == [10]  # the first grant only
