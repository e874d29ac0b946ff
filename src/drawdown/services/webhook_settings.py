"""How webhooks are delivered, from the environment (config.py) or a test: which URLs are
allowed, the retry schedule, the timings of claims and polls, and how long the outbox keeps
what it delivered (docs/webhooks.md)."""

import re
from dataclasses import dataclass

# 5 s, 5 min, 30 min, 2 h, 5 h, 10 h, 10 h: the waits after each failed attempt
DEFAULT_RETRY_SCHEDULE = (5.0, 300.0, 1800.0, 7200.0, 18000.0, 36000.0, 36000.0)
FIVE_DAYS = 5 * 86400.0
TIMEOUT_SECONDS = 10.0

_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}
_DURATION = re.compile(r"\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)\s*")


@dataclass(frozen=True)
class WebhookSettings:
    # http:// URLs (DRAWDOWN_WEBHOOK_ALLOW_HTTP=1) and loopback, private, link-local
    # addresses (DRAWDOWN_WEBHOOK_ALLOW_PRIVATE=1): for tests and local receivers only
    allow_http: bool = False
    allow_private: bool = False
    retry_schedule: tuple[float, ...] = DEFAULT_RETRY_SCHEDULE
    # an endpoint failing every attempt this long is disabled
    disable_after_seconds: float = FIVE_DAYS
    # a claim outlives an attempt (10 s) with room to spare; a dead process's claim expires
    claim_seconds: float = 30.0
    poll_seconds: float = 0.5
    # after a wake-up, how long to gather more before claiming (one claim for many)
    gather_seconds: float = 0.01
    # attempts one process has in flight at once
    concurrency: int = 32
    timeout_seconds: float = TIMEOUT_SECONDS
    # finished deliveries and the events no delivery needs are deleted after this many days
    retention_days: int = 30


def parse_duration(text: str) -> float:
    """`5s`, `5m`, `2h`, `0.2s`, `250ms`, `5d` -> seconds; ValueError otherwise."""
    found = _DURATION.fullmatch(text)
    if found is None:
        raise ValueError(f"{text!r} is not a duration such as 5s, 5m, 2h or 250ms")
    return float(found.group(1)) * _UNITS[found.group(2)]


def parse_schedule(text: str) -> tuple[float, ...]:
    """`5s,5m,30m` -> (5.0, 300.0, 1800.0); an empty schedule means one attempt only."""
    parts = [part for part in text.split(",") if part.strip()]
    return tuple(parse_duration(part) for part in parts)
