"""API keys: shown once, stored only as a hash, named by a public id, revocable."""

import hashlib
import secrets
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Row
from sqlalchemy.ext.asyncio import AsyncConnection

from drawdown.errors import BadRequest, NotFound
from drawdown.ledger.ids import new_id
from drawdown.store import parties

KEY_PREFIX = "dd_"
KEY_ID_PREFIX = "key"
MAX_ORGANIZATION_NAME = 100


@dataclass(frozen=True)
class Principal:
    org_seq: int
    read_only: bool
    # the key's public id: the `actor` of the events its requests cause
    key_id: str


@dataclass(frozen=True)
class IssuedKey:
    id: str
    key: str


def hash_key(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def check_organization_name(name: str) -> str:
    if not name.strip():
        raise BadRequest("the organization name must not be empty")
    if len(name) > MAX_ORGANIZATION_NAME or not name.isprintable():
        raise BadRequest(
            f"the organization name must be at most {MAX_ORGANIZATION_NAME} printable characters"
        )
    return name


async def issue_key(
    conn: AsyncConnection, org_name: str, read_only: bool, now: datetime
) -> IssuedKey:
    org_seq = await parties.find_or_create_organization(
        conn, check_organization_name(org_name), now
    )
    issued = IssuedKey(new_id(KEY_ID_PREFIX), KEY_PREFIX + secrets.token_urlsafe(32))
    await parties.insert_api_key(conn, org_seq, issued.id, hash_key(issued.key), read_only, now)
    return issued


async def create_key(conn: AsyncConnection, org_name: str, read_only: bool, now: datetime) -> str:
    return (await issue_key(conn, org_name, read_only, now)).key


async def list_keys(conn: AsyncConnection) -> list[Row[Any]]:
    """Every key's id, organization, read-only flag, creation and revocation; never the key."""
    return await parties.list_api_keys(conn)


async def revoke_key(conn: AsyncConnection, key_id: str, now: datetime) -> bool:
    """Revoke a key; False when it was already revoked."""
    revoked = await parties.revoke_api_key(conn, key_id, now)
    if revoked is None:
        raise NotFound(f"no API key has the id '{key_id}'; `drawdown keys list` shows them")
    return revoked


async def find_principal(conn: AsyncConnection, key: str) -> Principal | None:
    row = await parties.find_api_key(conn, hash_key(key))
    return Principal(row.org_seq, row.read_only, row.id) if row else None
