"""Queries for credit applications and for the credits that may pay them."""

from typing import Any

from sqlalchemy import Row, bindparam, select
from sqlalchemy.ext.asyncio import AsyncConnection

from drawdown.store.tables import credit_applications

_FIND_APPLICATION = select(credit_applications).where(
    credit_applications.c.account_seq == bindparam("account_seq"),
    credit_applications.c.invoice_id == bindparam("invoice_id"),
)
_INSERT_APPLICATION = credit_applications.insert()


async def find_application(
    conn: AsyncConnection, account_seq: int, invoice_id: str
) -> Row[Any] | None:
    params = {"account_seq": account_seq, "invoice_id": invoice_id}
    return (await conn.execute(_FIND_APPLICATION, params)).first()


async def insert_application(conn: AsyncConnection, values: dict[str, Any]) -> None:
    await conn.execute(_INSERT_APPLICATION, values)


async def page_of_applications(
    conn: AsyncConnection, account_seq: int, after_seq: int, limit: int
) -> list[Row[Any]]:
    query = (
        select(credit_applications)
        .where(
            credit_applications.c.account_seq == account_seq,
            credit_applications.c.seq > after_seq,
        )
        .order_by(credit_applications.c.seq)
        .limit(limit)
    )
    return list((await conn.execute(query)).all())
