"""What `drawdown serve` runs: preparation once, then one app per worker process."""

import asyncio
import gc
from collections.abc import Callable

from fastapi import FastAPI

from drawdown.api.app import create_app
from drawdown.clock import SystemClock
from drawdown.config import Settings
from drawdown.store.database import Database


def prepare(settings: Settings, echo: Callable[[str], None]) -> None:
    """Migrate, and when the database holds no API key, create org `default` and print one."""
    from drawdown.services.keys import create_key
    from drawdown.store import parties
    from drawdown.store.migrate import shown, upgrade

    upgrade(settings.database_url)

    async def first_key() -> str | None:
        db = Database(settings.database_url, wait_seconds=settings.database_wait_seconds)
        try:
            async with db.write() as conn:
                if await parties.count_api_keys(conn):
                    return None
                return await create_key(conn, "default", False, SystemClock().now())
        finally:
            await db.dispose()

    key = asyncio.run(first_key())
    if key:
        echo("No API key existed, so one was created for organization 'default':")
        echo(f"  export DRAWDOWN_KEY={key}")
    echo(f"drawdown is using {shown(settings.database_url)}")


def create() -> FastAPI:
    settings = Settings.from_env()
    app = create_app(
        Database(settings.database_url, settings.pool_size, settings.database_wait_seconds),
        sweep_every_seconds=settings.expiry_interval_seconds,
        rate_limit=settings.rate_limit,
        redis_url=settings.redis_url,
        redis_prefix=settings.redis_prefix,
        write_groups=settings.write_groups,
        usage_poll_seconds=settings.usage_poll_seconds,
        usage_batch=settings.usage_batch,
        usage_gather_seconds=settings.usage_gather_seconds,
        usage_behind_seconds=settings.usage_behind_seconds,
        usage_hold_seconds=settings.usage_hold_seconds,
        webhooks=settings.webhooks,
        deliver_webhooks=True,
        max_batch_bytes=settings.max_batch_bytes,
    )
    freeze_startup_heap()
    return app


def freeze_startup_heap() -> None:
    """Keep the garbage collector's full collections off what startup made. A worker holds
    about 110,000 objects from its imports (FastAPI, pydantic, SQLAlchemy...), and each full
    collection walked all of them: under the bench's load a worker paused for 55 to 75 ms
    about once every 3 s, which set the writes' p99. Frozen, they are never walked again
    (they live as long as the process anyway)."""
    gc.collect()
    gc.freeze()
