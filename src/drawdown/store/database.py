"""Engines and transactions. A request owns one transaction; writes take the writer's lock."""

import asyncio
import logging
import random
import sqlite3
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from decimal import Decimal
from typing import Any, TypeVar

import asyncpg
import msgspec
from sqlalchemy import event, exc, text
from sqlalchemy.engine import Connection as SyncConnection
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine

from drawdown.errors import DrawdownError
from drawdown.store.dead_peers import DEAD_PEER_SETTINGS
from drawdown.store.faults import Fault, domain_error, is_unique_violation, judge
from drawdown.store.interface import WriteStore
from drawdown.store.postgres import PostgresStore, prepare_session
from drawdown.store.sqlite import SqliteStore

log = logging.getLogger("drawdown.store")

T = TypeVar("T")

DEFAULT_WAIT_SECONDS = 30.0
# Beyond the wait (for a connection or a lock), how long a statement or a read may go without
# an answer before the database is judged silent (a hung server, a network dropping packets):
# the write store's statements then fail (asyncpg's command timeout) and reads answer 503.
SILENCE_MARGIN_SECONDS = 5.0
# a deadlock, a serialization failure or a connection lost before COMMIT runs the whole
# transaction again, this many times in all, after a short random pause
WRITE_ATTEMPTS = 4


# JSON columns (a customer's settings) keep decimals exactly: written as the number literal
# they came as, read back as Decimal, never through a float
_json_encoder = msgspec.json.Encoder(decimal_format="number")
_json_decoder = msgspec.json.Decoder(float_hook=Decimal)


def _json_text(value: Any) -> str:
    return _json_encoder.encode(value).decode()


def _json_value(text: str | bytes) -> Any:
    return _json_decoder.decode(text)


def _pause(attempt: int) -> float:
    return random.uniform(0, 0.02 * 2**attempt)


def _first_line(error: BaseException) -> str:
    """What a log may say of a driver error: its first line, without the statement and its
    parameters (which can hold customers' data)."""
    return (str(error).strip().splitlines() or [type(error).__name__])[0]


@asynccontextmanager
async def _as_domain_errors(committing: list[bool] | None = None) -> AsyncIterator[None]:
    """Driver failures leave as domain errors (503, 409); anything else unchanged."""
    try:
        yield
    except DrawdownError:
        raise
    except Exception as error:
        mapped = domain_error(error, committing=bool(committing and committing[0]))
        if mapped is None:
            raise
        log.warning(
            "database failure answered as %s: %s", type(mapped).__name__, _first_line(error)
        )
        raise mapped from error


def async_url(url: str) -> str:
    """The driver the server runs on: aiosqlite for SQLite; asyncpg for PostgreSQL, whichever
    driver the URL names (bench/run.py measured it well ahead of psycopg's async mode)."""
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        return parsed.set(drivername="sqlite+aiosqlite").render_as_string(hide_password=False)
    return parsed.set(drivername="postgresql+asyncpg").render_as_string(hide_password=False)


def asyncpg_dsn(url: str) -> str:
    return make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)


def sync_url(url: str) -> str:
    """The blocking driver for the same database, used by migrations."""
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        return parsed.set(drivername="sqlite").render_as_string(hide_password=False)
    return parsed.set(drivername="postgresql+psycopg").render_as_string(hide_password=False)


def _configure_sqlite(engine: AsyncEngine, busy_timeout_ms: int) -> None:
    """One writer at a time: writes begin IMMEDIATE and wait their turn; reads use WAL."""

    @event.listens_for(engine.sync_engine, "connect")
    def on_connect(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute(f"PRAGMA busy_timeout={busy_timeout_ms}")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.close()

    @event.listens_for(engine.sync_engine, "begin")
    def on_begin(conn: SyncConnection) -> None:
        if conn.get_execution_options().get("drawdown_write"):
            conn.exec_driver_sql("BEGIN IMMEDIATE")
        else:
            conn.exec_driver_sql("BEGIN")


def _replace_closed_connections(engine: AsyncEngine) -> None:
    """A pooled connection whose backend was terminated (or whose server went away) is
    replaced at checkout, never handed to a request. asyncpg notices the closed socket by
    itself, so this costs no round trip, unlike a pre-ping."""

    @event.listens_for(engine.sync_engine, "checkout")
    def on_checkout(dbapi_connection: Any, _record: Any, _proxy: Any) -> None:
        raw = getattr(dbapi_connection, "_connection", None)
        if raw is not None and raw.is_closed():
            raise exc.DisconnectionError("the database closed this pooled connection")


async def _end_open_transaction(connection: Any) -> None:
    """What a pooled connection needs on release: reads and committed or rolled-back writes
    change no session state, so skip asyncpg's reset round trip; one left inside a transaction
    (a write cancelled past its rollback) is rolled back."""
    if connection.is_in_transaction():
        await connection.execute("ROLLBACK")


class Database:
    """`wait_seconds` bounds how long a request waits for a pooled connection, a new
    connection, or SQLite's write lock before it answers 503."""

    def __init__(
        self, url: str, pool_size: int = 10, wait_seconds: float = DEFAULT_WAIT_SECONDS
    ) -> None:
        self.url = url
        target = async_url(url)
        self.dialect = make_url(target).get_backend_name()
        self.wait_seconds = wait_seconds
        options: dict[str, Any] = {}
        if self.dialect == "postgresql":
            # A fixed pool: connections that overflow and close cost a backend start each.
            options = {
                "pool_size": pool_size,
                "max_overflow": 0,
                "pool_timeout": wait_seconds,
                "connect_args": {
                    "timeout": wait_seconds,
                    # a row lock held past the wait is "busy": 55P03, answered 503
                    "server_settings": {
                        "lock_timeout": str(int(wait_seconds * 1000)),
                        **DEAD_PEER_SETTINGS,
                    },
                },
            }
        self.engine = create_async_engine(
            target, json_serializer=_json_text, json_deserializer=_json_value, **options
        )
        if self.dialect == "sqlite":
            _configure_sqlite(self.engine, int(wait_seconds * 1000))
        else:
            _replace_closed_connections(self.engine)
        self._autocommit = self.engine.execution_options(isolation_level="AUTOCOMMIT")
        self._pool_size = pool_size
        self._fast: asyncpg.Pool | None = None
        self._pool_lock = asyncio.Lock()
        self._write_store: WriteStore | None = None
        self._writer: asyncio.Lock | None = None

    @property
    def is_postgresql(self) -> bool:
        return self.dialect == "postgresql"

    @property
    def silent_after(self) -> float:
        """Seconds after which a statement or a read without an answer means the database
        stopped answering: the wait, which a legitimate one may spend queued for a connection
        or a lock, and a margin for the work itself."""
        return self.wait_seconds + SILENCE_MARGIN_SECONDS

    @asynccontextmanager
    async def read(self) -> AsyncIterator[AsyncConnection]:
        """A connection for reading. On PostgreSQL each statement is its own snapshot, with no
        BEGIN/COMMIT round trips (reads there are single statements); on SQLite the whole
        block reads one snapshot."""
        async with _as_domain_errors():
            if self.is_postgresql:
                async with self._autocommit.connect() as conn:
                    yield conn
                return
            async with self.engine.connect() as conn, conn.begin():
                yield conn

    @asynccontextmanager
    async def write(self) -> AsyncIterator[AsyncConnection]:
        """A transaction that may move money; commits when the block ends without error.
        Requests use `transact`, which also retries."""
        committing = [False]
        async with _as_domain_errors(committing), self._transaction(committing) as conn:
            yield conn

    @asynccontextmanager
    async def _transaction(self, committing: list[bool]) -> AsyncIterator[AsyncConnection]:
        """A write transaction with driver errors left as they are; `committing[0]` turns
        True once the block is done and COMMIT is about to be sent."""
        async with self.writer_turn(), self.engine.connect() as conn:
            await conn.execution_options(drawdown_write=True)
            async with conn.begin():
                yield conn
                committing[0] = True

    @asynccontextmanager
    async def writer_turn(self) -> AsyncIterator[None]:
        """SQLite: this process's write transactions take turns in arrival order before they
        ask for the database's lock. Left to SQLite's busy handler, which sleeps and retries,
        a writer could lose to a busy coalescer's back-to-back groups again and again (webhook
        delivery starved for seconds under write load). Waiting longer than the database
        wait is SQLite's own "database is locked" (503). PostgreSQL: nothing."""
        if self.dialect != "sqlite":
            yield
            return
        if self._writer is None:
            self._writer = asyncio.Lock()
        try:
            # asyncio.timeout, not wait_for: on Python 3.11 wait_for swallows a cancellation
            # that arrives as the lock is granted, and a cancelled task then runs on
            async with asyncio.timeout(self.wait_seconds):
                await self._writer.acquire()
        except TimeoutError:
            raise sqlite3.OperationalError("database is locked") from None
        try:
            yield
        finally:
            self._writer.release()

    async def transact(self, work: Callable[[AsyncConnection], Awaitable[T]]) -> T:
        """Run `work` in one write transaction and commit. A deadlock or serialization
        failure, or a connection lost before COMMIT, runs it again on a fresh connection
        (the database rolled the first try back); the caller never sees them unless they
        persist. `work` must therefore only touch the database through `conn`."""
        for attempt in range(1, WRITE_ATTEMPTS + 1):
            committing = [False]
            try:
                async with self._transaction(committing) as conn:
                    result = await work(conn)
                return result
            except DrawdownError:
                raise
            except Exception as error:
                fault = judge(error)
                # a unique key taken by a transaction that committed meanwhile: run again, and
                # the work now finds that row (an idempotent answer, or a clear 409)
                again = (
                    fault is Fault.RETRY
                    or (fault is Fault.LOST and not committing[0])
                    or is_unique_violation(error)
                )
                if not again or attempt == WRITE_ATTEMPTS:
                    async with _as_domain_errors(committing):
                        raise
                log.info(
                    "retrying a write transaction (attempt %d): %s", attempt + 1, _first_line(error)
                )
                await asyncio.sleep(_pause(attempt))
        raise AssertionError("unreachable")

    async def _bare_pool(self) -> asyncpg.Pool:
        """PostgreSQL only: the process's bare asyncpg pool, made on first use. It serves the
        hottest single-statement reads and the write store, which skip SQLAlchemy altogether.
        Sessions carry `lock_timeout` (a row lock held past the wait is 55P03, answered 503),
        UTC (the zone the write store's JSON reads its timestamps in), and generic plans: left
        to choose, PostgreSQL planned the write store's load afresh on every run (its array
        parameters make the generic plan look dearer), which cost more than running it. And no
        sequential scans: a generic plan is made once per session, with the statistics of that
        moment, and on tables that had grown since their last ANALYZE (every new deployment)
        it hashed whole tables to find a few rows by key: each write group read all 12,000
        credits twice and all accounts once, halving hot-account debits until autovacuum
        caught up. The write store's statements find their rows by index
        (tests/test_store.py holds them to it)."""
        async with self._pool_lock:
            if self._fast is None:
                self._fast = await asyncpg.create_pool(
                    asyncpg_dsn(self.url),
                    min_size=1,
                    max_size=self._pool_size,
                    timeout=self.wait_seconds,
                    command_timeout=self.silent_after,
                    reset=_end_open_transaction,
                    init=prepare_session,
                    server_settings={
                        "lock_timeout": str(int(self.wait_seconds * 1000)),
                        "TimeZone": "UTC",
                        "plan_cache_mode": "force_generic_plan",
                        "enable_seqscan": "off",
                        **DEAD_PEER_SETTINGS,
                    },
                )
        return self._fast

    async def fast_pool(self) -> "FastReads":
        async with _as_domain_errors():
            return FastReads(await self._bare_pool(), self.wait_seconds)

    def write_store(self) -> WriteStore:
        """The store every money write goes through, for this database's engine. Its driver
        failures leave as they are, for `store.faults.judge`."""
        if self._write_store is None:
            if self.is_postgresql:
                self._write_store = PostgresStore(self._bare_pool, self.wait_seconds)
            else:
                self._write_store = SqliteStore(self.engine, self.writer_turn)
        return self._write_store

    async def ping(self) -> None:
        async with self.read() as conn:
            await conn.execute(text("SELECT 1"))

    async def dispose(self) -> None:
        if self._fast is not None:
            await self._fast.close()
            self._fast = None
        await self.engine.dispose()


class FastReads:
    """Single-statement reads on the bare asyncpg pool, with driver failures mapped. A read
    changes nothing, so one that lost its connection runs once more on a fresh one. A read
    waits `wait_seconds` at most for a connection, and its statement `silent_after` for an
    answer (the pool's command timeout); a connection whose statement went unanswered is cut
    off rather than released as it is, which would wait on the silent database. So the hot
    reads answer 503 in bounded time without api/read_deadline.py's task per request."""

    def __init__(self, pool: "asyncpg.Pool", wait_seconds: float) -> None:
        self._pool = pool
        self._wait = wait_seconds

    async def fetchrow(self, query: str, *args: Any) -> Any:
        for attempt in range(2):
            try:
                return await self._fetchrow(query, *args)
            except Exception as error:
                if attempt == 0 and judge(error) is Fault.LOST:
                    self._pool.expire_connections()
                    continue
                async with _as_domain_errors():
                    raise
        raise AssertionError("unreachable")

    async def _fetchrow(self, query: str, *args: Any) -> Any:
        async with self._pool.acquire(timeout=self._wait) as conn:
            try:
                return await conn.fetchrow(query, *args)
            except TimeoutError:
                conn.terminate()
                raise
