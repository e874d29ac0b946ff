"""API keys: shown once, stored only as a hash."""

import hashlib
import secrets
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy.ext.asyncio import AsyncConnection

from drawdown.store import parties

KEY_PREFIX = "dd_"


@dataclass(frozen=True)
class Principal:
    org_seq: int
    read_only: bool


def hash_key(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


async def create_key(conn: AsyncConnection, org_name: str, read_only: bool, now: datetime) -> str:
    org_seq = await parties.find_or_create_organization(conn, org_name, now)
    key = KEY_PREFIX + secrets.token_urlsafe(32)
    await parties.insert_api_key(conn, org_seq, hash_key(key), read_only, now)
    return key


async def find_principal(conn: AsyncConnection, key: str) -> Principal | None:
    row = await parties.find_api_key(conn, hash_key(key))
    return Principal(row.org_seq, row.read_only) if row else None
