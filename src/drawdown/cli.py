"""`drawdown serve | migrate | keys create | expire | verify`."""

import asyncio
from typing import Annotated

import typer

from drawdown.clock import SystemClock
from drawdown.config import Settings

app = typer.Typer(help="drawdown: a credits ledger for usage-based billing.", no_args_is_help=True)
keys_app = typer.Typer(help="API keys.", no_args_is_help=True)
app.add_typer(keys_app, name="keys")


def _settings() -> Settings:
    return Settings.from_env()


@app.command()
def migrate() -> None:
    """Apply the database migrations."""
    from drawdown.store.migrate import upgrade

    upgrade(_settings().database_url)
    typer.echo("database is up to date")


@keys_app.command("create")
def keys_create(
    org: Annotated[str, typer.Option(help="Organization name; created if it does not exist.")],
    read_only: Annotated[bool, typer.Option("--read-only", help="A key that may only read.")] = (
        False
    ),
) -> None:
    """Create an API key and print it, alone, on the last line."""
    from drawdown.services.keys import create_key
    from drawdown.store.database import Database
    from drawdown.store.migrate import upgrade

    settings = _settings()
    upgrade(settings.database_url)

    async def run() -> str:
        db = Database(settings.database_url)
        try:
            async with db.write() as conn:
                return await create_key(conn, org, read_only, SystemClock().now())
        finally:
            await db.dispose()

    key = asyncio.run(run())
    typer.echo(f"created a {'read-only' if read_only else 'read-write'} key for '{org}':")
    typer.echo(key)


@app.command()
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
    uvicorn.run(
        "drawdown.server:create",
        factory=True,
        host=host,
        port=port,
        workers=workers,
        log_level="warning",
        access_log=False,
    )


@app.command()
def expire() -> None:
    """Run the expiry sweep once: expire what is past its last day, recount balances."""
    from drawdown.jobs.expiry import sweep
    from drawdown.store.database import Database

    settings = _settings()

    async def run() -> int:
        db = Database(settings.database_url)
        try:
            return await sweep(db, SystemClock())
        finally:
            await db.dispose()

    typer.echo(f"brought {asyncio.run(run())} accounts up to date")


@app.command()
def verify() -> None:
    """Recompute every credit from its ledger lines and every balance from its credits."""
    from drawdown.services.verify import verify as check
    from drawdown.store.database import Database

    settings = _settings()

    async def run() -> list[str]:
        db = Database(settings.database_url)
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
    typer.echo("ledger verified: every credit and balance matches its lines")
