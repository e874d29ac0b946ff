"""Engines and transactions. A request owns one transaction; writes take the writer's lock."""

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import asyncpg
from sqlalchemy import event, text
from sqlalchemy.engine import Connection as SyncConnection
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine

SQLITE_BUSY_TIMEOUT_MS = 30_000


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


def _configure_sqlite(engine: AsyncEngine) -> None:
    """One writer at a time: writes begin IMMEDIATE and wait their turn; reads use WAL."""

    @event.listens_for(engine.sync_engine, "connect")
    def on_connect(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.close()

    @event.listens_for(engine.sync_engine, "begin")
    def on_begin(conn: SyncConnection) -> None:
        if conn.get_execution_options().get("drawdown_write"):
            conn.exec_driver_sql("BEGIN IMMEDIATE")
        else:
            conn.exec_driver_sql("BEGIN")


async def _keep_session(_connection: Any) -> None:
    return None


class Database:
    def __init__(self, url: str, pool_size: int = 10) -> None:
        self.url = url
        target = async_url(url)
        self.dialect = make_url(target).get_backend_name()
        options: dict[str, Any] = {}
        if self.dialect == "postgresql":
            # A fixed pool: connections that overflow and close cost a backend start each.
            options = {"pool_size": pool_size, "max_overflow": 0, "pool_timeout": 60}
        self.engine = create_async_engine(target, **options)
        if self.dialect == "sqlite":
            _configure_sqlite(self.engine)
        self._autocommit = self.engine.execution_options(isolation_level="AUTOCOMMIT")
        self._pool_size = pool_size
        self._fast: asyncpg.Pool | None = None

    @property
    def is_postgresql(self) -> bool:
        return self.dialect == "postgresql"

    @asynccontextmanager
    async def read(self) -> AsyncIterator[AsyncConnection]:
        """A connection for reading. On PostgreSQL each statement is its own snapshot, with no
        BEGIN/COMMIT round trips (reads there are single statements); on SQLite the whole
        block reads one snapshot."""
        if self.is_postgresql:
            async with self._autocommit.connect() as conn:
                yield conn
            return
        async with self.engine.connect() as conn, conn.begin():
            yield conn

    @asynccontextmanager
    async def write(self) -> AsyncIterator[AsyncConnection]:
        """A transaction that may move money; commits when the block ends without error."""
        async with self.engine.connect() as conn:
            await conn.execution_options(drawdown_write=True)
            async with conn.begin():
                yield conn

    async def fast_pool(self) -> "asyncpg.Pool":
        """PostgreSQL only: a bare asyncpg pool for the hottest single-statement reads, which
        skip SQLAlchemy altogether."""
        if self._fast is None:
            self._fast = await asyncpg.create_pool(
                asyncpg_dsn(self.url),
                min_size=1,
                max_size=self._pool_size,
                # these reads change no session state, so skip the reset round trip
                reset=_keep_session,
            )
        return self._fast

    async def ping(self) -> None:
        async with self.engine.connect() as conn:
            await conn.execute(text("SELECT 1"))

    async def dispose(self) -> None:
        if self._fast is not None:
            await self._fast.close()
            self._fast = None
        await self.engine.dispose()
