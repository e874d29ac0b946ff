"""Settings, read from the environment. A bad value stops the program with one clear line."""

import os
from dataclasses import dataclass, field

from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError

from drawdown.api.guards import MAX_BATCH_BODY_BYTES, MAX_BODY_BYTES
from drawdown.services.applier import DEFAULT_BEHIND_SECONDS
from drawdown.services.ingest import MAX_HOLD_SECONDS
from drawdown.services.webhook_settings import (
    DEFAULT_RETRY_SCHEDULE,
    FIVE_DAYS,
    WebhookSettings,
    parse_duration,
    parse_schedule,
)
from drawdown.store.database import DEFAULT_WAIT_SECONDS

DEFAULT_DATABASE_URL = "sqlite:///./drawdown.db"
# events are accepted up to 45 days old, so they must be kept at least that long
MIN_RETENTION_DAYS = 45


class SettingsError(ValueError):
    """An environment variable holds a value drawdown cannot use."""


def _number(name: str, default: str, kind: type[int] | type[float], minimum: float) -> float:
    raw = os.environ.get(name, default)
    try:
        value = kind(raw)
    except ValueError:
        raise SettingsError(f"{name} must be a number, not {raw!r}") from None
    if value < minimum:
        raise SettingsError(f"{name} must be at least {minimum}, not {raw!r}")
    return value


def _optional_number(name: str, minimum: float) -> float | None:
    """A number of seconds, or None when unset (the setting then follows another)."""
    if not os.environ.get(name, "").strip():
        return None
    return _number(name, "", float, minimum)


def _flag(name: str) -> bool:
    raw = os.environ.get(name, "").strip()
    if raw in ("", "0"):
        return False
    if raw == "1":
        return True
    raise SettingsError(f"{name} must be 1 or 0, not {raw!r}")


def _duration(name: str, default: float) -> float:
    raw = os.environ.get(name, "").strip()
    if not raw:
        return default
    try:
        return parse_duration(raw)
    except ValueError as error:
        raise SettingsError(f"{name}: {error}") from None


def _webhooks() -> WebhookSettings:
    raw = os.environ.get("DRAWDOWN_WEBHOOK_RETRY_SCHEDULE", "").strip()
    try:
        schedule = parse_schedule(raw) if raw else DEFAULT_RETRY_SCHEDULE
    except ValueError as error:
        raise SettingsError(f"DRAWDOWN_WEBHOOK_RETRY_SCHEDULE: {error}") from None
    return WebhookSettings(
        allow_http=_flag("DRAWDOWN_WEBHOOK_ALLOW_HTTP"),
        allow_private=_flag("DRAWDOWN_WEBHOOK_ALLOW_PRIVATE"),
        retry_schedule=schedule,
        disable_after_seconds=_duration("DRAWDOWN_WEBHOOK_DISABLE_AFTER", FIVE_DAYS),
        claim_seconds=_duration("DRAWDOWN_WEBHOOK_CLAIM_SECONDS", 30.0),
        poll_seconds=_duration("DRAWDOWN_WEBHOOK_POLL_SECONDS", 0.5),
        retention_days=int(_number("DRAWDOWN_WEBHOOK_RETENTION_DAYS", "30", int, 1)),
    )


def _database_url(raw: str) -> str:
    try:
        backend = make_url(raw).get_backend_name()
    except ArgumentError:
        backend = None
    if backend not in ("sqlite", "postgresql"):
        raise SettingsError(
            "DRAWDOWN_DATABASE_URL must be a SQLite or PostgreSQL URL, such as "
            "sqlite:///./drawdown.db or postgresql://user@host:5432/drawdown"
        )
    return raw


@dataclass(frozen=True)
class Settings:
    database_url: str = DEFAULT_DATABASE_URL
    expiry_interval_seconds: float = 60.0
    pool_size: int = 10
    # how long a request waits for a database connection or SQLite's write lock before 503
    database_wait_seconds: float = DEFAULT_WAIT_SECONDS
    # requests per second per API key, with an equal burst; None: no limit
    rate_limit: int | None = None
    redis_url: str | None = None
    redis_prefix: str = "drawdown"
    # write transactions one worker runs at once; each holds every write that arrived meanwhile
    write_groups: int = 2
    # usage (docs/usage.md): how often each process looks for pending events, how many events
    # of one account one transaction applies, how long events are kept (at least 45 days)
    usage_poll_seconds: float = 0.2
    usage_batch: int = 2000
    # the least time between two rounds of burns, so that under load each burn takes more
    # events (None: the applier's default, 0.5 s); backpressure: an account whose events have
    # waited this long beyond that means applying is behind, and an ingest answer waits at
    # most the hold for it to catch up (0: never)
    usage_gather_seconds: float | None = None
    usage_behind_seconds: float = DEFAULT_BEHIND_SECONDS
    usage_hold_seconds: float = MAX_HOLD_SECONDS
    event_retention_days: int = 45
    # the largest /ingestBatch body, in bytes (every other route: 1 MiB)
    max_batch_bytes: int = MAX_BATCH_BODY_BYTES
    webhooks: WebhookSettings = field(default_factory=WebhookSettings)

    @classmethod
    def from_env(cls) -> "Settings":
        rate = os.environ.get("DRAWDOWN_RATE_LIMIT", "").strip()
        return cls(
            database_url=_database_url(
                os.environ.get("DRAWDOWN_DATABASE_URL") or DEFAULT_DATABASE_URL
            ),
            expiry_interval_seconds=_number("DRAWDOWN_EXPIRY_INTERVAL", "60", float, 0.001),
            pool_size=int(_number("DRAWDOWN_POOL_SIZE", "10", int, 1)),
            database_wait_seconds=_number(
                "DRAWDOWN_DATABASE_WAIT", str(DEFAULT_WAIT_SECONDS), float, 0.001
            ),
            rate_limit=int(_number("DRAWDOWN_RATE_LIMIT", rate, int, 1)) if rate else None,
            redis_url=os.environ.get("DRAWDOWN_REDIS_URL") or None,
            redis_prefix=os.environ.get("DRAWDOWN_REDIS_PREFIX") or "drawdown",
            write_groups=int(_number("DRAWDOWN_WRITE_GROUPS", "2", int, 1)),
            usage_poll_seconds=_number("DRAWDOWN_USAGE_POLL_SECONDS", "0.2", float, 0.001),
            usage_batch=int(_number("DRAWDOWN_USAGE_BATCH", "2000", int, 1)),
            usage_gather_seconds=_optional_number("DRAWDOWN_USAGE_GATHER_SECONDS", 0),
            usage_behind_seconds=_number(
                "DRAWDOWN_USAGE_BEHIND_SECONDS", str(DEFAULT_BEHIND_SECONDS), float, 0.001
            ),
            usage_hold_seconds=_number(
                "DRAWDOWN_USAGE_HOLD_SECONDS", str(MAX_HOLD_SECONDS), float, 0
            ),
            event_retention_days=int(
                _number("DRAWDOWN_EVENT_RETENTION_DAYS", "45", int, MIN_RETENTION_DAYS)
            ),
            max_batch_bytes=int(
                _number("DRAWDOWN_MAX_BATCH_BYTES", str(MAX_BATCH_BODY_BYTES), int, MAX_BODY_BYTES)
            ),
            webhooks=_webhooks(),
        )
