"""Queries for organizations, API keys, customers and accounts."""

from datetime import datetime
from typing import Any, Literal

from sqlalchemy import Row, select
from sqlalchemy.ext.asyncio import AsyncConnection

from drawdown.ledger.money import ZERO
from drawdown.store.tables import accounts, api_keys, customers, organizations


async def find_or_create_organization(conn: AsyncConnection, name: str, now: datetime) -> int:
    query = select(organizations.c.seq).where(organizations.c.name == name)
    seq = (await conn.execute(query)).scalar()
    if seq is None:
        result = await conn.execute(
            organizations.insert().values(name=name, created_at=now).returning(organizations.c.seq)
        )
        seq = result.scalar_one()
    return int(seq)


async def insert_api_key(
    conn: AsyncConnection, org_seq: int, key_id: str, key_hash: str, read_only: bool, now: datetime
) -> None:
    await conn.execute(
        api_keys.insert().values(
            id=key_id, org_seq=org_seq, key_hash=key_hash, read_only=read_only, created_at=now
        )
    )


async def list_api_keys(conn: AsyncConnection) -> list[Row[Any]]:
    query = (
        select(
            api_keys.c.id,
            organizations.c.name.label("organization"),
            api_keys.c.read_only,
            api_keys.c.created_at,
            api_keys.c.revoked_at,
        )
        .join(organizations, organizations.c.seq == api_keys.c.org_seq)
        .order_by(api_keys.c.seq)
    )
    return list((await conn.execute(query)).all())


async def revoke_api_key(conn: AsyncConnection, key_id: str, now: datetime) -> bool | None:
    """True when revoked now, False when it already was, None when there is no such key."""
    found = await conn.execute(select(api_keys.c.revoked_at).where(api_keys.c.id == key_id))
    row = found.first()
    if row is None:
        return None
    if row.revoked_at is not None:
        return False
    await conn.execute(api_keys.update().where(api_keys.c.id == key_id).values(revoked_at=now))
    return True


async def count_api_keys(conn: AsyncConnection) -> int:
    rows = await conn.execute(select(api_keys.c.seq).limit(1))
    return len(rows.all())


async def find_api_key(conn: AsyncConnection, key_hash: str) -> Row[Any] | None:
    query = select(api_keys.c.org_seq, api_keys.c.read_only, api_keys.c.id).where(
        api_keys.c.key_hash == key_hash, api_keys.c.revoked_at.is_(None)
    )
    return (await conn.execute(query)).first()


async def find_customer(
    conn: AsyncConnection,
    org_seq: int,
    customer_id: str,
    *,
    archived: bool = False,
    lock: Literal["share", "no key update", "update"] | None = None,
) -> Row[Any] | None:
    """The customer, or None (also when archived, unless `archived`: its id stays taken). With
    `lock` (PostgreSQL; SQLite holds its one write lock anyway): "share" for a new account of
    it (FOR KEY SHARE), "no key update" to change it, "update" to archive it (FOR UPDATE, which
    waits for accounts being made for it)."""
    query = select(customers).where(customers.c.org_seq == org_seq, customers.c.id == customer_id)
    if not archived:
        query = query.where(customers.c.archived_at.is_(None))
    if lock == "share":
        query = query.with_for_update(read=True, key_share=True)
    elif lock == "no key update":
        query = query.with_for_update(key_share=True)
    elif lock == "update":
        query = query.with_for_update()
    return (await conn.execute(query)).first()


async def update_customer(conn: AsyncConnection, customer_seq: int, values: dict[str, Any]) -> None:
    await conn.execute(customers.update().where(customers.c.seq == customer_seq).values(**values))


async def live_accounts_of(conn: AsyncConnection, customer_seq: int) -> list[str]:
    """The ids of the customer's accounts that are not archived."""
    query = (
        select(accounts.c.id)
        .where(accounts.c.customer_seq == customer_seq, accounts.c.archived_at.is_(None))
        .order_by(accounts.c.id)
    )
    return [row.id for row in await conn.execute(query)]


async def insert_customer(conn: AsyncConnection, values: dict[str, Any]) -> int:
    result = await conn.execute(customers.insert().values(**values).returning(customers.c.seq))
    return int(result.scalar_one())


async def insert_account(conn: AsyncConnection, values: dict[str, Any], now: datetime) -> int:
    balance = {
        "bal_active_amount": ZERO,
        "bal_applicable_left": ZERO,
        "bal_applicable_held": ZERO,
        "bal_inapplicable_left": ZERO,
        "bal_as_of": now.date(),
        "bal_valid_through": None,
        "bal_updated_at": now,
    }
    result = await conn.execute(
        accounts.insert().values(**values, **balance).returning(accounts.c.seq)
    )
    return int(result.scalar_one())


async def page_of_customers(
    conn: AsyncConnection, org_seq: int, after_seq: int, limit: int
) -> list[Row[Any]]:
    query = (
        select(customers)
        .where(
            customers.c.org_seq == org_seq,
            customers.c.seq > after_seq,
            customers.c.archived_at.is_(None),
        )
        .order_by(customers.c.seq)
        .limit(limit)
    )
    return list((await conn.execute(query)).all())


async def page_of_accounts(
    conn: AsyncConnection, org_seq: int, after_seq: int, limit: int
) -> list[Row[Any]]:
    query = (
        select(accounts)
        .where(
            accounts.c.org_seq == org_seq,
            accounts.c.seq > after_seq,
            accounts.c.archived_at.is_(None),
        )
        .order_by(accounts.c.seq)
        .limit(limit)
    )
    return list((await conn.execute(query)).all())
