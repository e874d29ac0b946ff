"""`drawdown serve | migrate | keys create | keys list | keys revoke | expire | verify |
apply-usage | purge-events | purge-webhooks`.

An operator's mistake (a bad setting, an unreachable or unmigrated database, an empty
organization name) ends the command with one line on stderr and exit status 1, never a
traceback.
"""

import asyncio
import functools
from collections.abc import Callable
from typing import Annotated, ParamSpec, TypeVar

import typer

from drawdown.clock import SystemClock
from drawdown.config import Settings, SettingsError
from drawdown.errors import DrawdownError

app = typer.Typer(help="drawdown: a credits ledger for usage-based billing.", no_args_is_help=True)
keys_app = typer.Typer(help="API keys.", no_args_is_help=True)
app.add_typer(keys_app, name="keys")

P = ParamSpec("P")
T = TypeVar("T")

# how long `serve` keeps an idle HTTP connection open (see serve)
KEEP_ALIVE_SECONDS = 75


def operator_errors(command: Callable[P, T]) -> Callable[P, T]:
    """Known failures leave as one line on stderr and exit status 1."""

    @functools.wraps(command)
    def run(*args: P.args, **kwargs: P.kwargs) -> T:
        try:
            return command(*args, **kwargs)
        except SettingsError as error:
            message = str(error)
        except DrawdownError as error:
            message = error.message
        typer.echo(f"drawdown: {message}", err=True)
        raise typer.Exit(1)

    return run


def _settings() -> Settings:
    return Settings.from_env()


@app.command()
@operator_errors
def migrate() -> None:
    """Apply the database migrations."""
    from drawdown.store.migrate import upgrade

    upgrade(_settings().database_url)
    typer.echo("database is up to date")


@keys_app.command("create")
@operator_errors
def keys_create(
    org: Annotated[str, typer.Option(help="Organization name; created if it does not exist.")],
    read_only: Annotated[bool, typer.Option("--read-only", help="A key that may only read.")] = (
        False
    ),
) -> None:
    """Create an API key and print it, alone, on the last line."""
    from drawdown.services.keys import check_organization_name, issue_key
    from drawdown.store.database import Database
    from drawdown.store.migrate import upgrade

    check_organization_name(org)
    settings = _settings()
    upgrade(settings.database_url)

    async def run() -> tuple[str, str]:
        db = Database(settings.database_url, wait_seconds=settings.database_wait_seconds)
        try:
            async with db.write() as conn:
                issued = await issue_key(conn, org, read_only, SystemClock().now())
                return issued.id, issued.key
        finally:
            await db.dispose()

    key_id, key = asyncio.run(run())
    access = "read-only" if read_only else "read-write"
    typer.echo(f"created the {access} key {key_id} for '{org}':")
    typer.echo(key)


@keys_app.command("list")
@operator_errors
def keys_list() -> None:
    """List every API key: id, organization, access, created, revoked (never the key)."""
    from drawdown.services.keys import list_keys
    from drawdown.store.database import Database
    from drawdown.store.migrate import require_current

    settings = _settings()
    require_current(settings.database_url)

    async def run() -> list[tuple[str, ...]]:
        db = Database(settings.database_url, wait_seconds=settings.database_wait_seconds)
        try:
            async with db.read() as conn:
                rows = await list_keys(conn)
        finally:
            await db.dispose()
        return [
            (
                row.id,
                row.organization,
                "read-only" if row.read_only else "read-write",
                row.created_at.isoformat(timespec="seconds"),
                row.revoked_at.isoformat(timespec="seconds") if row.revoked_at else "-",
            )
            for row in rows
        ]

    table = [("ID", "ORGANIZATION", "ACCESS", "CREATED", "REVOKED"), *asyncio.run(run())]
    widths = [max(len(row[i]) for row in table) for i in range(5)]
    for row in table:
        cells = [cell.ljust(width) for cell, width in zip(row, widths, strict=True)]
        typer.echo("  ".join(cells).rstrip())


@keys_app.command("revoke")
@operator_errors
def keys_revoke(
    key_id: Annotated[str, typer.Argument(help="The key's id, as `drawdown keys list` shows.")],
) -> None:
    """Revoke an API key: within a second every server answers it with 401."""
    from drawdown.services.keys import revoke_key
    from drawdown.store.database import Database
    from drawdown.store.migrate import require_current

    settings = _settings()
    require_current(settings.database_url)

    async def run() -> bool:
        db = Database(settings.database_url, wait_seconds=settings.database_wait_seconds)
        try:
            async with db.write() as conn:
                return await revoke_key(conn, key_id, SystemClock().now())
        finally:
            await db.dispose()

    if asyncio.run(run()):
        typer.echo(f"revoked {key_id}")
    else:
        typer.echo(f"{key_id} was already revoked")


@app.command()
@operator_errors
def serve(
    host: Annotated[str, typer.Option(help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to listen on.")] = 8000,
    workers: Annotated[int, typer.Option(help="Server processes.")] = 1,
) -> None:
    """Run the API. Applies migrations first, and prints a key when none exists yet."""
    import uvicorn

    from drawdown.server import prepare

    settings = _settings()
    prepare(settings, echo=typer.echo)
    shown_host = f"[{host}]" if ":" in host else host
    typer.echo(f"drawdown is listening on http://{shown_host}:{port}")
    uvicorn.run(
        "drawdown.server:create",
        factory=True,
        host=host,
        port=port,
        workers=workers,
        log_level="warning",
        access_log=False,
        # Idle connections stay open longer than load balancers keep theirs (60 s is common):
        # with uvicorn's 5 s, a balancer or a client's pool sends a request on a connection
        # the server is closing just then, and gets a reset instead of an answer (seen in a
        # test's second burst of requests, under load).
        timeout_keep_alive=KEEP_ALIVE_SECONDS,
    )


@app.command()
@operator_errors
def expire() -> None:
    """Run the expiry sweep once: expire what is past its last day, recount balances."""
    from drawdown.jobs.expiry import sweep
    from drawdown.store.database import Database
    from drawdown.store.migrate import require_current

    settings = _settings()
    require_current(settings.database_url)

    async def run() -> int:
        db = Database(settings.database_url, wait_seconds=settings.database_wait_seconds)
        try:
            return await sweep(db, SystemClock())
        finally:
            await db.dispose()

    typer.echo(f"brought {asyncio.run(run())} accounts up to date")


@app.command("apply-usage")
@operator_errors
def apply_usage(
    once: Annotated[
        bool, typer.Option("--once", help="Apply everything pending now, then exit.")
    ] = False,
) -> None:
    """Run the usage applier alone: apply accepted events to the credits, polling every
    DRAWDOWN_USAGE_POLL_SECONDS (servers run one each too)."""
    from drawdown.services.applier import Applier
    from drawdown.services.writes import Writes
    from drawdown.store.database import Database
    from drawdown.store.migrate import require_current

    settings = _settings()
    require_current(settings.database_url)

    async def run() -> int:
        db = Database(settings.database_url, settings.pool_size, settings.database_wait_seconds)
        writes = Writes(db.write_store(), SystemClock(), in_flight=settings.write_groups)
        applier = Applier(
            db, writes, poll_seconds=settings.usage_poll_seconds, batch=settings.usage_batch
        )
        try:
            if once:
                return await applier.drain()
            await applier.run()
            return applier.applied
        finally:
            await applier.stop()
            await db.dispose()

    typer.echo(f"applied {asyncio.run(run())} usage events")


@app.command("purge-events")
@operator_errors
def purge_events() -> None:
    """Delete applied usage events older than DRAWDOWN_EVENT_RETENTION_DAYS (at least 45) plus
    a day, keeping what they recorded in sums (totals and verify stay whole)."""
    from drawdown.jobs.purge import purge_events as purge
    from drawdown.store.database import Database
    from drawdown.store.migrate import require_current

    settings = _settings()
    require_current(settings.database_url)

    async def run() -> int:
        db = Database(settings.database_url, wait_seconds=settings.database_wait_seconds)
        try:
            return await purge(db, SystemClock(), settings.event_retention_days)
        finally:
            await db.dispose()

    typer.echo(f"purged {asyncio.run(run())} usage events")


@app.command("purge-webhooks")
@operator_errors
def purge_webhooks() -> None:
    """Delete finished webhook deliveries and the events no delivery needs, once older than
    DRAWDOWN_WEBHOOK_RETENTION_DAYS (30); every server does it in its sweep too."""
    from drawdown.jobs.outbox import purge_outbox
    from drawdown.store.database import Database
    from drawdown.store.migrate import require_current

    settings = _settings()
    require_current(settings.database_url)

    async def run() -> str:
        db = Database(settings.database_url, wait_seconds=settings.database_wait_seconds)
        try:
            now = SystemClock().now()
            purged = await purge_outbox(db, now, settings.webhooks.retention_days)
        finally:
            await db.dispose()
        return f"purged {purged.deliveries} webhook deliveries and {purged.events} events"

    typer.echo(asyncio.run(run()))


@app.command()
@operator_errors
def verify() -> None:
    """Recompute every credit from its ledger lines and every balance from its credits."""
    from drawdown.services.verify import verify as check
    from drawdown.store.database import Database
    from drawdown.store.migrate import require_current

    settings = _settings()
    require_current(settings.database_url)

    async def run() -> list[str]:
        db = Database(settings.database_url, wait_seconds=settings.database_wait_seconds)
        try:
            async with db.read() as conn:
                return await check(conn, SystemClock().now().date())
        finally:
            await db.dispose()

    problems = asyncio.run(run())
    for problem in problems:
        typer.echo(problem)
    if problems:
        typer.echo(f"{len(problems)} mismatches", err=True)
        raise typer.Exit(1)
    typer.echo(
        "ledger verified: every credit and balance matches its lines, every usage line and "
        "total its events"
    )
