"""Settings, read from the environment."""

import os
from dataclasses import dataclass

DEFAULT_DATABASE_URL = "sqlite:///./drawdown.db"


@dataclass(frozen=True)
class Settings:
    database_url: str = DEFAULT_DATABASE_URL
    expiry_interval_seconds: float = 60.0
    pool_size: int = 10

    @classmethod
    def from_env(cls) -> "Settings":
        return cls(
            database_url=os.environ.get("DRAWDOWN_DATABASE_URL", DEFAULT_DATABASE_URL),
            expiry_interval_seconds=float(os.environ.get("DRAWDOWN_EXPIRY_INTERVAL", "60")),
            pool_size=int(os.environ.get("DRAWDOWN_POOL_SIZE", "10")),
        )
