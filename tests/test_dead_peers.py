"""A drawdown process cut off from PostgreSQL (store/dead_peers.py): the server ends its
sessions within seconds, not the kernel's default 2 h 11 min, and with them the locks of their
open transactions, an applier's seat and its "behind" mark.

A connection is cut off by dropping every packet to or from its port in the kernel (nftables):
the server then hears nothing more from it, not even the FIN of the closed socket, as from a
host that vanished. That needs `nft` and root; `.ci/run` installs Debian's nftables."""

import asyncio
import contextlib
import os
import shutil
import subprocess
import time
from collections.abc import AsyncIterator, Iterator

import asyncpg
import pytest

from drawdown.services.seating import Seating
from drawdown.store import seats
from drawdown.store.database import Database, asyncpg_dsn
from tests.conftest import ENGINE

pytestmark = pytest.mark.skipif(ENGINE != "postgresql", reason="PostgreSQL's sessions")

# the settings end a silent peer's session 10 to 15 s after it fell silent
GONE_WITHIN_SECONDS = 25.0
# and not at once: the cut-off really left the server hearing nothing
STILL_HELD_SECONDS = 3.0
LOCK_KEY = 7_300_001


@contextlib.contextmanager
def cut_off(port: int) -> Iterator[None]:
    """Drop every packet to or from local TCP port `port` until the block ends."""
    if shutil.which("nft") is None:
        pytest.skip("cutting a connection off needs nft (Debian's nftables)")
    if os.geteuid() != 0:
        pytest.skip("cutting a connection off needs root")
    table = f"drawdown_cut_{os.getpid()}_{port}"
    rules = (
        f"table ip {table} {{\n"
        "  chain output {\n"
        "    type filter hook output priority 0; policy accept;\n"
        f"    tcp sport {port} drop\n"
        f"    tcp dport {port} drop\n"
        "  }\n"
        "}\n"
    )
    subprocess.run(["nft", "-f", "-"], input=rules.encode(), check=True, capture_output=True)
    try:
        yield
    finally:
        subprocess.run(["nft", "delete", "table", "ip", table], check=True, capture_output=True)


async def client_port(conn: asyncpg.Connection) -> int:
    """The local port of `conn`, as the server sees it."""
    port = await conn.fetchval(
        "SELECT client_port FROM pg_stat_activity WHERE pid = pg_backend_pid()"
    )
    assert isinstance(port, int) and port > 0, "the test needs a TCP connection"
    return port


async def seconds_until_lock_is_free(dsn: str) -> float:
    """How long a fresh session waits for `LOCK_KEY` (transaction-level), at most
    `GONE_WITHIN_SECONDS` (then the wait fails the test with lock_timeout's error)."""
    conn = await asyncpg.connect(dsn)
    try:
        await conn.execute(f"SET lock_timeout = '{int(GONE_WITHIN_SECONDS * 1000)}ms'")
        started = time.monotonic()
        async with conn.transaction():
            await conn.execute("SELECT pg_advisory_xact_lock($1)", LOCK_KEY)
        return time.monotonic() - started
    finally:
        await conn.close()


@contextlib.asynccontextmanager
async def pooled(url: str, pool: str) -> AsyncIterator[asyncpg.Connection]:
    """A connection of one of `Database`'s two pools: SQLAlchemy's (reads and the API's
    other statements) or the bare asyncpg pool (the write store). It is terminated at the
    end, as a process that lost it would."""
    db = Database(url)
    try:
        if pool == "sqlalchemy":
            async with db.engine.connect() as sa_conn:
                raw = await sa_conn.get_raw_connection()
                conn = raw.driver_connection
                assert isinstance(conn, asyncpg.Connection)
                try:
                    yield conn
                finally:
                    conn.terminate()
                    await sa_conn.invalidate()
        else:
            bare = await db._bare_pool()
            conn = await bare.acquire()
            try:
                yield conn
            finally:
                conn.terminate()
                await bare.release(conn)
    finally:
        await db.dispose()


@pytest.mark.parametrize("pool", ["sqlalchemy", "bare"])
async def test_a_vanished_writers_transaction_lets_go_of_its_locks_within_seconds(
    own_url: str, pool: str
) -> None:
    async with pooled(own_url, pool) as conn:
        port = await client_port(conn)
        await conn.execute("BEGIN")
        await conn.execute("SELECT pg_advisory_xact_lock($1)", LOCK_KEY)
        with cut_off(port):
            waited = await seconds_until_lock_is_free(asyncpg_dsn(own_url))
    assert STILL_HELD_SECONDS < waited < GONE_WITHIN_SECONDS


async def test_a_vanished_appliers_seat_and_behind_mark_go_within_seconds(own_url: str) -> None:
    dsn = asyncpg_dsn(own_url)
    vanishing, staying = Seating(dsn, 1), Seating(dsn, 5)
    admin = await asyncpg.connect(dsn)
    try:
        await vanishing.refresh(True)
        await staying.refresh(False)
        assert staying.share[0] == 2 and staying.others_behind
        port = await admin.fetchval(
            "SELECT a.client_port FROM pg_locks l JOIN pg_stat_activity a USING (pid) "
            "WHERE l.locktype = 'advisory' AND l.objsubid = 2 AND l.classid::bigint = $1 "
            "AND l.objid::bigint = $2",
            seats.SEAT_CLASS,
            vanishing.seat,
        )
        with cut_off(port):
            started = time.monotonic()
            # its next refresh times out (1 s) and it closes the connection, unheard
            await vanishing.refresh(True)
            assert not vanishing.seated
            while time.monotonic() - started < GONE_WITHIN_SECONDS:
                await staying.refresh(False)
                if staying.share == (1, 0) and not staying.others_behind:
                    break
                await asyncio.sleep(0.25)
            waited = time.monotonic() - started
        assert staying.share == (1, 0) and not staying.others_behind
        assert STILL_HELD_SECONDS < waited < GONE_WITHIN_SECONDS
    finally:
        await admin.close()
        await vanishing.close()
        await staying.close()
