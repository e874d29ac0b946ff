"""Queries for credit applications and for the credits that may pay them."""

from collections.abc import AsyncIterator
from datetime import date
from typing import Any

from sqlalchemy import Row, bindparam, or_, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from drawdown.ledger.credit import CreditStatus
from drawdown.ledger.records import CreditRecord
from drawdown.store.tables import credit_applications, credits

# Most invoices are paid by the first credit or two: read a few, then more as needed.
FIRST_CANDIDATES = 8
MAX_CANDIDATES = 512


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


async def update_application(conn: AsyncConnection, seq: int, values: dict[str, Any]) -> None:
    await conn.execute(
        update(credit_applications).where(credit_applications.c.seq == seq).values(**values)
    )


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


_CANDIDATES = (
    select(credits)
    .where(
        credits.c.account_seq == bindparam("account_seq"),
        credits.c.status == CreditStatus.ACTIVE.value,
        credits.c.effective_from <= bindparam("as_of"),
        or_(credits.c.effective_until.is_(None), credits.c.effective_until >= bindparam("as_of")),
    )
    .order_by(
        credits.c.priority,
        credits.c.effective_until.asc().nulls_last(),
        credits.c.effective_from,
        credits.c.created_at,
        credits.c.id,  # byte order on both engines (see tables.BYTE_ORDER_ID)
    )
    .limit(bindparam("batch", literal_execute=False))
    .offset(bindparam("offset", literal_execute=False))
)


async def candidates_in_order(
    conn: AsyncConnection, account_seq: int, as_of: date
) -> AsyncIterator[list[CreditRecord]]:
    """The account's active credits in effect on `as_of`, in drawdown order, fetched in
    batches, so that an account with thousands of credits reads only as many as it spends."""
    offset, batch = 0, FIRST_CANDIDATES
    while True:
        params = {"account_seq": account_seq, "as_of": as_of, "batch": batch, "offset": offset}
        rows = (await conn.execute(_CANDIDATES, params)).all()
        yield [CreditRecord.from_row(row) for row in rows]
        if len(rows) < batch:
            return
        offset += batch
        batch = min(batch * 8, MAX_CANDIDATES)
