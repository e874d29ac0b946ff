"""Throttling: at most `rate` requests per second per API key, with a burst of `rate` (a
moving one-second window, from the `limits` library). With a Redis URL every server process
counts in the same place; without one, each process keeps its own count in memory.

If Redis cannot be reached the limiter fails open: requests are served unthrottled and a
warning is logged (at most every 10 s), because a ledger that refuses payments when its
rate-limit store is down would turn a side service into an outage.
"""

import hashlib
import logging
import math
import time

from limits import RateLimitItemPerSecond
from limits.aio.storage import MemoryStorage, RedisStorage, Storage
from limits.aio.strategies import MovingWindowRateLimiter
from limits.errors import StorageError
from starlette.types import ASGIApp, Receive, Scope, Send

from drawdown.api.errors import domain_error_response
from drawdown.errors import Throttled

log = logging.getLogger("drawdown.throttle")

_WARN_EVERY_SECONDS = 10.0
REDIS_TIMEOUT_SECONDS = 2.0


def storage_for(redis_url: str | None, prefix: str = "drawdown") -> Storage:
    if not redis_url:
        return MemoryStorage()
    return RedisStorage(
        redis_url if redis_url.startswith("async+") else f"async+{redis_url}",
        wrap_exceptions=True,
        implementation="redispy",
        key_prefix=prefix,
        # long enough for a busy server process to see Redis's answer, short enough that a
        # Redis gone silent delays requests by at most this before they are served unthrottled
        socket_connect_timeout=REDIS_TIMEOUT_SECONDS,
        socket_timeout=REDIS_TIMEOUT_SECONDS,
    )


def bearer_key(scope: Scope) -> str | None:
    for name, value in scope["headers"]:
        if name == b"authorization":
            scheme, _, key = value.decode("latin-1").partition(" ")
            return key.strip() or None if scheme.lower() == "bearer" else None
    return None


class Throttle:
    def __init__(self, app: ASGIApp, rate: int, storage: Storage) -> None:
        self.app = app
        self.item = RateLimitItemPerSecond(rate)
        self.limiter = MovingWindowRateLimiter(storage)
        self._warned_at = -math.inf

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        key = bearer_key(scope) if scope["type"] == "http" else None
        if key is not None:
            # the key itself never leaves the process: the count is kept under its hash
            who = hashlib.sha256(key.encode()).hexdigest()[:32]
            wait = await self._wait(who)
            if wait:
                error = Throttled(
                    f"too many requests for this API key (at most {self.item.amount} per "
                    f"second); retry after {wait} s",
                    retry_after=wait,
                )
                await domain_error_response(error)(scope, receive, send)
                return
        await self.app(scope, receive, send)

    async def _wait(self, who: str) -> int:
        """0 when the request may go ahead; else the seconds until it may."""
        try:
            if await self.limiter.hit(self.item, "api-key", who):
                return 0
            stats = await self.limiter.get_window_stats(self.item, "api-key", who)
        except StorageError as error:
            now = time.monotonic()
            if now - self._warned_at > _WARN_EVERY_SECONDS:
                self._warned_at = now
                log.warning("rate limit store unreachable, serving unthrottled: %s", error)
            return 0
        return max(1, math.ceil(stats.reset_time - time.time()))
