"""Queries for credit applications and for the credits that may pay them."""

from collections.abc import AsyncIterator
from datetime import date
from typing import Any

from sqlalchemy import Row, Select, bindparam, or_, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from drawdown.ledger.credit import CreditStatus
from drawdown.store.records import CreditRecord
from drawdown.store.tables import credit_applications, credits

CANDIDATE_BATCH = 50


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


def _candidates_query(dialect: str) -> Select[Any]:
    return (
        select(credits)
        .where(
            credits.c.account_seq == bindparam("account_seq"),
            credits.c.status == CreditStatus.ACTIVE.value,
            credits.c.effective_from <= bindparam("as_of"),
            or_(
                credits.c.effective_until.is_(None), credits.c.effective_until >= bindparam("as_of")
            ),
        )
        .order_by(
            credits.c.priority,
            credits.c.effective_until.asc().nulls_last(),
            credits.c.effective_from,
            credits.c.created_at,
            # byte order, as the rules compare ids, whatever the database's collation
            credits.c.id.collate("C" if dialect == "postgresql" else "BINARY"),
        )
        .limit(bindparam("batch", literal_execute=False))
        .offset(bindparam("offset", literal_execute=False))
    )


_CANDIDATES = {dialect: _candidates_query(dialect) for dialect in ("postgresql", "sqlite")}


async def candidates_in_order(
    conn: AsyncConnection, account_seq: int, as_of: date
) -> AsyncIterator[list[CreditRecord]]:
    """The account's active credits in effect on `as_of`, in drawdown order, fetched in
    batches, so that an account with thousands of credits reads only as many as it spends."""
    query = _CANDIDATES[conn.dialect.name]
    offset = 0
    while True:
        params = {"account_seq": account_seq, "as_of": as_of, "batch": CANDIDATE_BATCH}
        rows = (await conn.execute(query, {**params, "offset": offset})).all()
        yield [CreditRecord.from_row(row) for row in rows]
        if len(rows) < CANDIDATE_BATCH:
            return
        offset += CANDIDATE_BATCH
