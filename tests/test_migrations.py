"""The migrations build exactly the tables the code declares."""

from collections.abc import Iterator
from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import create_engine, pool, select, text, update

from drawdown.store.database import sync_url
from drawdown.store.migrate import alembic_config, is_current
from drawdown.store.tables import accounts, metadata
from tests.conftest import ENGINE, create_postgres_database, drop_postgres_database


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


@pytest.fixture
def fresh_database_url(tmp_path: Path) -> Iterator[str]:
    """An empty database of the suite's engine, migrated by nothing yet."""
    if ENGINE == "postgresql":
        url = create_postgres_database()
        yield url
        drop_postgres_database(url)
    else:
        yield f"sqlite:///{tmp_path / 'upgrade.db'}"


def test_0002_widens_totals_and_back_fills_the_balance_day(fresh_database_url: str) -> None:
    """An account written under 0001 keeps its balance, now counted for the UTC day of its
    last change, and its totals take 28 digits before the point."""
    config = alembic_config(fresh_database_url)
    command.upgrade(config, "0001")
    engine = create_engine(sync_url(fresh_database_url), poolclass=pool.NullPool)
    try:
        with engine.begin() as conn:
            conn.execute(
                text("INSERT INTO organizations (name, created_at) VALUES ('o', :at)"),
                {"at": datetime(2026, 11, 1, tzinfo=UTC)},
            )
            conn.execute(
                text(
                    "INSERT INTO customers (org_seq, id, name, primary_email, billing_address,"
                    " address, status, created_at, updated_at) VALUES (1, 'c', 'Cust',"
                    " 'c@example.test', '', '{}', 'ACTIVE', :at, :at)"
                ),
                {"at": datetime(2026, 11, 1, tzinfo=UTC)},
            )
            conn.execute(
                text(
                    "INSERT INTO accounts (org_seq, id, customer_seq, customer_id, name,"
                    " invoice_currency, status, details, created_at, updated_at,"
                    " bal_active_amount, bal_applicable_left, bal_applicable_held,"
                    " bal_inapplicable_left, bal_valid_through, bal_updated_at) VALUES"
                    " (1, 'a', 1, 'c', 'Acc', 'USD', 'ACTIVE', '{}', :at, :at,"
                    " '7.5', '7.5', '0', '0', NULL, :changed)"
                ),
                {
                    "at": datetime(2026, 11, 1, tzinfo=UTC),
                    "changed": datetime(2026, 11, 24, 23, 59, 59, 999999, tzinfo=UTC),
                },
            )
        command.upgrade(config, "head")
        with engine.begin() as conn:
            row = conn.execute(select(accounts).where(accounts.c.id == "a")).one()
            assert row.bal_as_of == date(2026, 11, 24)
            assert row.bal_active_amount == Decimal("7.5")
            widest = Decimal("9999999999999999999999999999.9999999999")
            conn.execute(update(accounts).values(bal_active_amount=widest))
            assert conn.execute(select(accounts.c.bal_active_amount)).scalar_one() == widest
    finally:
        engine.dispose()
