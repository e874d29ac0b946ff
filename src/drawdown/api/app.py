"""The FastAPI application."""

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from drawdown import __version__
from drawdown.api import credits, errors, health, parties
from drawdown.api.auth import KeyCache
from drawdown.clock import Clock, SystemClock
from drawdown.store.database import Database


def create_app(db: Database, clock: Clock | None = None) -> FastAPI:
    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        yield
        await db.dispose()

    app = FastAPI(
        title="drawdown",
        version=__version__,
        description=(
            "A credits ledger for usage-based billing that speaks Togai's Credits API, "
            "with exact money, holds for draft invoices and strict tenant isolation."
        ),
        lifespan=lifespan,
    )
    app.state.db = db
    app.state.clock = clock or SystemClock()
    app.state.keys = KeyCache()
    errors.install(app)
    app.include_router(health.routes)
    app.include_router(credits.routes)
    app.include_router(parties.routes)
    return app
