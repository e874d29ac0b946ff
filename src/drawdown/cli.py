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
