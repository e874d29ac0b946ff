"""Fixtures: one real database per test session (SQLite by default, PostgreSQL with
DRAWDOWN_TEST_DATABASE=postgresql), built by the migrations; every test gets an organization
of its own, so tests never see each other's rows and nothing is cleaned with DELETE."""

import os
import uuid
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime
from pathlib import Path

import httpx
import psycopg
import pytest
from hypothesis import settings
from sqlalchemy.engine import make_url

from drawdown.api.app import create_app
from drawdown.clock import FixedClock
from drawdown.services.keys import create_key
from drawdown.store.database import Database
from drawdown.store.migrate import upgrade

ENGINE = os.environ.get("DRAWDOWN_TEST_DATABASE", "sqlite")
POSTGRES_ADMIN_URL = os.environ.get(
    "DRAWDOWN_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test"
)
NOW = datetime(2026, 11, 24, 12, 0, tzinfo=UTC)

settings.register_profile("default", max_examples=25)
settings.register_profile("thorough", max_examples=400)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "default"))


def _admin_dsn() -> str:
    url = make_url(POSTGRES_ADMIN_URL)
    return url.set(drivername="postgresql").render_as_string(hide_password=False)


def create_postgres_database() -> str:
    name = f"drawdown_test_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(_admin_dsn(), autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    return make_url(POSTGRES_ADMIN_URL).set(database=name).render_as_string(hide_password=False)


def drop_postgres_database(url: str) -> None:
    name = make_url(url).database
    with psycopg.connect(_admin_dsn(), autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture
def own_url() -> Iterator[str]:
    """PostgreSQL only: a migrated database of the test's own, which no other test's server
    holds a session or an applier's seat in."""
    url = create_postgres_database()
    upgrade(url)
    yield url
    drop_postgres_database(url)


@pytest.fixture(scope="session")
def database_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    if ENGINE == "postgresql":
        url = create_postgres_database()
        upgrade(url)
        yield url
        drop_postgres_database(url)
    elif ENGINE == "sqlite":
        path: Path = tmp_path_factory.mktemp("db") / "drawdown.db"
        url = f"sqlite:///{path}"
        upgrade(url)
        yield url
    else:
        raise pytest.UsageError(
            f"DRAWDOWN_TEST_DATABASE must be sqlite or postgresql, not {ENGINE}"
        )


@pytest.fixture(scope="session")
async def db(database_url: str) -> AsyncIterator[Database]:
    database = Database(database_url)
    yield database
    await database.dispose()


@pytest.fixture
def clock() -> FixedClock:
    return FixedClock(NOW)


async def new_key(db: Database, *, read_only: bool = False, org: str | None = None) -> str:
    async with db.write() as conn:
        return await create_key(conn, org or f"org-{uuid.uuid4().hex}", read_only, NOW)


@pytest.fixture
async def org_name() -> str:
    return f"org-{uuid.uuid4().hex}"


@pytest.fixture
async def api_key(db: Database, org_name: str) -> str:
    return await new_key(db, org=org_name)


@pytest.fixture
async def client(db: Database, clock: FixedClock, api_key: str) -> AsyncIterator[httpx.AsyncClient]:
    app = create_app(db, clock)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(
        transport=transport,
        base_url="http://drawdown.test",
        headers={"Authorization": f"Bearer {api_key}"},
    ) as http:
        yield http
