"""The FastAPI application."""

import asyncio
import contextlib
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from drawdown import __version__
from drawdown.api import (
    applications,
    credits,
    documentation,
    endpoints,
    errors,
    health,
    methods,
    parties,
    usage,
    wallet,
)
from drawdown.api import (
    webhooks as webhook_routes,
)
from drawdown.api.auth import KeyCache
from drawdown.api.guards import MAX_BATCH_BODY_BYTES, BodyLimit, LastResort, NulFreeUrl
from drawdown.api.throttle import Throttle, storage_for
from drawdown.clock import Clock, SystemClock
from drawdown.jobs import expiry
from drawdown.services.applier import (
    DEFAULT_BATCH,
    DEFAULT_BEHIND_SECONDS,
    DEFAULT_POLL_SECONDS,
    Applier,
)
from drawdown.services.delivery import Deliverer
from drawdown.services.ingest import MAX_HOLD_SECONDS, Ingestion
from drawdown.services.webhook_settings import WebhookSettings
from drawdown.services.writes import Writes
from drawdown.store.database import Database


def create_app(
    db: Database,
    clock: Clock | None = None,
    sweep_every_seconds: float | None = None,
    rate_limit: int | None = None,
    redis_url: str | None = None,
    redis_prefix: str = "drawdown",
    write_groups: int = 2,
    usage_poll_seconds: float | None = None,
    usage_batch: int = DEFAULT_BATCH,
    usage_gather_seconds: float | None = None,
    usage_behind_seconds: float = DEFAULT_BEHIND_SECONDS,
    usage_hold_seconds: float = MAX_HOLD_SECONDS,
    webhooks: WebhookSettings | None = None,
    deliver_webhooks: bool = False,
    max_batch_bytes: int = MAX_BATCH_BODY_BYTES,
) -> FastAPI:
    """The API on `db`; with `sweep_every_seconds`, the expiry sweep and the outbox's clean-up
    run in the background;
    with `rate_limit`, each API key may send that many requests per second (counted in Redis
    when `redis_url` is given, so every process shares the count); with `usage_poll_seconds`,
    the usage applier runs in the background (else `app.state.applier.drain()` applies); with
    `deliver_webhooks`, webhook delivery does (else `app.state.deliverer.drain()` delivers).
    /ingestBatch takes bodies up to `max_batch_bytes`, every other route up to 1 MiB."""
    the_clock = clock or SystemClock()
    writes = Writes(db.write_store(), the_clock, in_flight=write_groups)
    applier = Applier(
        db,
        writes,
        poll_seconds=usage_poll_seconds or DEFAULT_POLL_SECONDS,
        batch=usage_batch,
        gather_seconds=usage_gather_seconds,
        behind_seconds=usage_behind_seconds,
    )
    webhook_settings = webhooks or WebhookSettings()
    deliverer = Deliverer(db, webhook_settings)
    writes.coalescer.on_events = deliverer.wake

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        sweeper = None
        if sweep_every_seconds:
            sweeper = asyncio.create_task(
                expiry.run_periodically(
                    db, the_clock, sweep_every_seconds, webhook_settings.retention_days
                )
            )
        applying = None
        if usage_poll_seconds:
            applying = asyncio.create_task(applier.run())
        delivering = None
        if deliver_webhooks:
            delivering = asyncio.create_task(deliverer.run())
        yield
        if delivering:
            delivering.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await delivering
        await deliverer.stop()
        if applying:
            applying.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await applying
            await applier.stop()
        if sweeper:
            sweeper.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await sweeper
        await db.dispose()

    app = documentation.create(
        title="drawdown",
        version=__version__,
        description=(
            "A credits ledger for usage-based billing that speaks Togai's Credits API, "
            "with exact money, holds for draft invoices and strict tenant isolation."
        ),
        lifespan=lifespan,
    )
    app.state.db = db
    app.state.clock = the_clock
    app.state.writes = writes
    app.state.applier = applier
    app.state.deliverer = deliverer
    app.state.webhooks = webhook_settings
    app.state.ingestion = Ingestion(
        db.write_store(),
        the_clock,
        in_flight=write_groups,
        woken=applier.wake,
        # only a running applier catches up: without one, holding answers would only wait
        behind=applier.behind if usage_poll_seconds and usage_hold_seconds else None,
        max_hold_seconds=usage_hold_seconds,
    )
    app.state.keys = KeyCache()
    errors.install(app)
    methods.install(app)
    endpoints.mount(
        app,
        [
            health.routes,
            *credits.routes,
            parties.routes,
            wallet.routes,
            *applications.routes,
            *usage.routes,
            webhook_routes.routes,
        ],
    )
    # outermost last: LastResort, Throttle, NulFreeUrl, BodyLimit, then the app
    app.add_middleware(
        BodyLimit,
        per_path={"/ingestBatch": (max_batch_bytes, "split the batch: send fewer events")},
    )
    app.add_middleware(NulFreeUrl)
    if rate_limit:
        app.add_middleware(Throttle, rate=rate_limit, storage=storage_for(redis_url, redis_prefix))
    app.add_middleware(LastResort)
    return app
