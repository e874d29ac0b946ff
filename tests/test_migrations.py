"""The migrations build exactly the tables the code declares."""

from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import create_engine, pool

from drawdown.store.database import sync_url
from drawdown.store.migrate import is_current
from drawdown.store.tables import metadata


def test_the_session_database_is_at_the_newest_migration(database_url: str) -> None:
    assert is_current(database_url)


def test_migrations_and_tables_agree(database_url: str) -> None:
    engine = create_engine(sync_url(database_url), poolclass=pool.NullPool)
    try:
        with engine.connect() as conn:
            differences = compare_metadata(MigrationContext.configure(conn), metadata)
    finally:
        engine.dispose()
    assert differences == []
