"""Applying the Alembic migrations that ship inside the package."""

from collections.abc import Iterator
from contextlib import contextmanager

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import create_engine, exc, pool
from sqlalchemy.engine import make_url

from drawdown.errors import DrawdownError, Unavailable
from drawdown.store.database import sync_url


class NotMigrated(DrawdownError):
    """The database lacks drawdown's tables, or is behind the code: `drawdown migrate`."""

    status_code = 503


def shown(url: str) -> str:
    """The URL as it may be printed: without its password."""
    return make_url(url).render_as_string(hide_password=True)


@contextmanager
def _reaching(url: str) -> Iterator[None]:
    """A database that cannot be reached or opened becomes one clear Unavailable."""
    try:
        yield
    except exc.OperationalError as error:
        reason = str(error.orig).strip().splitlines()[0] if error.orig else str(error)
        raise Unavailable(f"cannot reach the database at {shown(url)}: {reason}") from error


def alembic_config(url: str) -> Config:
    config = Config()
    config.set_main_option("script_location", "drawdown.store:migrations")
    config.set_main_option("sqlalchemy.url", sync_url(url).replace("%", "%%"))
    return config


def upgrade(url: str) -> None:
    with _reaching(url):
        command.upgrade(alembic_config(url), "head")


def is_current(url: str) -> bool:
    """True when the database is at the newest migration."""
    config = alembic_config(url)
    head = ScriptDirectory.from_config(config).get_current_head()
    engine = create_engine(sync_url(url), poolclass=pool.NullPool)
    try:
        with _reaching(url), engine.connect() as conn:
            return MigrationContext.configure(conn).get_current_revision() == head
    finally:
        engine.dispose()


def require_current(url: str) -> None:
    if not is_current(url):
        raise NotMigrated(
            f"the database at {shown(url)} is not migrated to this version of drawdown; "
            "run `drawdown migrate` first"
        )
