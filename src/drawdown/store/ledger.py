"""Queries for accounts' balances, credits and their transactions."""

from collections.abc import Iterable, Sequence
from datetime import date
from typing import Any

from sqlalchemy import bindparam, select
from sqlalchemy.ext.asyncio import AsyncConnection

from drawdown.ledger.credit import CreditStatus, TransactionType
from drawdown.ledger.records import AccountRecord, CreditRecord, TransactionRecord
from drawdown.store.tables import accounts, credit_transactions, credits

# The statements of the hot paths are built once; building them per call cost more than
# running them.
_ANY_ACCOUNT = select(accounts).where(
    accounts.c.org_seq == bindparam("org_seq"), accounts.c.id == bindparam("account_id")
)
# an archived (deleted) account reads as unknown (docs/wallet.md)
_FIND_ACCOUNT = _ANY_ACCOUNT.where(accounts.c.archived_at.is_(None))
# FOR NO KEY UPDATE, not FOR UPDATE: a grant on the fast path holds the FOR KEY SHARE lock its
# credit's foreign key takes on the account row, then UPDATEs that row; a FOR UPDATE waiting in
# between would deadlock with it. The accounts' keys never change, so no writer needs more.
_LOCK_ACCOUNT = _FIND_ACCOUNT.with_for_update(key_share=True)
_INSERT_CREDIT = credits.insert().returning(credits.c.seq)
_INSERT_TRANSACTION = credit_transactions.insert()
_FIND_CREDIT = select(credits).where(
    credits.c.id == bindparam("credit_id"), credits.c.org_seq == bindparam("org_seq")
)
_CREDITS_BY_ID = select(credits).where(
    credits.c.account_seq == bindparam("account_seq"),
    credits.c.id.in_(bindparam("ids", expanding=True)),
)


async def find_account(
    conn: AsyncConnection,
    org_seq: int,
    account_id: str,
    *,
    lock: bool = False,
    archived: bool = False,
) -> AccountRecord | None:
    """The account, or None (also when archived, unless `archived`: its id stays taken); with
    `lock`, held (FOR NO KEY UPDATE) until the transaction ends."""
    query = _LOCK_ACCOUNT if lock else _ANY_ACCOUNT if archived else _FIND_ACCOUNT
    row = (await conn.execute(query, {"org_seq": org_seq, "account_id": account_id})).first()
    return AccountRecord.from_row(row) if row else None


async def insert_credit(conn: AsyncConnection, values: dict[str, Any]) -> int:
    result = await conn.execute(_INSERT_CREDIT, values)
    return int(result.scalar_one())


async def insert_transactions(
    conn: AsyncConnection, rows: Sequence[tuple[int, TransactionRecord]]
) -> None:
    """Append ledger lines, each given with the seq of its credit."""
    if not rows:
        return
    await conn.execute(
        _INSERT_TRANSACTION,
        [
            {
                "credit_seq": credit_seq,
                "id": line.id,
                "transaction_type": line.transaction_type.value,
                "invoice_id": line.invoice_id,
                "entity_id": line.entity_id,
                "amount": line.amount,
                "created_at": line.created_at,
            }
            for credit_seq, line in rows
        ],
    )


async def find_credit(conn: AsyncConnection, org_seq: int, credit_id: str) -> CreditRecord | None:
    row = (await conn.execute(_FIND_CREDIT, {"credit_id": credit_id, "org_seq": org_seq})).first()
    return CreditRecord.from_row(row) if row else None


async def credits_by_id(
    conn: AsyncConnection, account_seq: int, ids: Iterable[str]
) -> dict[str, CreditRecord]:
    wanted = list(set(ids))
    if not wanted:
        return {}
    rows = await conn.execute(_CREDITS_BY_ID, {"account_seq": account_seq, "ids": wanted})
    return {row.id: CreditRecord.from_row(row) for row in rows}


async def active_credits(conn: AsyncConnection, account_seq: int) -> list[CreditRecord]:
    query = (
        select(credits)
        .where(credits.c.account_seq == account_seq, credits.c.status == CreditStatus.ACTIVE.value)
        .order_by(credits.c.seq)
    )
    return [CreditRecord.from_row(row) for row in await conn.execute(query)]


async def transactions_of(conn: AsyncConnection, credit: CreditRecord) -> list[TransactionRecord]:
    query = (
        select(credit_transactions)
        .where(credit_transactions.c.credit_seq == credit.seq)
        .order_by(credit_transactions.c.seq)
    )
    return [
        TransactionRecord(
            id=row.id,
            credit_id=credit.id,
            transaction_type=TransactionType(row.transaction_type),
            amount=row.amount,
            created_at=row.created_at,
            invoice_id=row.invoice_id,
            entity_id=row.entity_id,
        )
        for row in await conn.execute(query)
    ]


async def page_of_credits(
    conn: AsyncConnection,
    org_seq: int,
    *,
    after_seq: int,
    limit: int,
    statuses: Sequence[str] | None = None,
    account_id: str | None = None,
    credit_id: str | None = None,
) -> list[CreditRecord]:
    query = select(credits).where(credits.c.org_seq == org_seq, credits.c.seq > after_seq)
    if statuses is not None:
        query = query.where(credits.c.status.in_(statuses))
    if account_id is not None:
        query = query.where(credits.c.account_id == account_id)
    if credit_id is not None:
        query = query.where(credits.c.id == credit_id)
    query = query.order_by(credits.c.seq).limit(limit)
    return [CreditRecord.from_row(row) for row in await conn.execute(query)]


async def accounts_due(conn: AsyncConnection, today: date, org_seq: int | None = None) -> list[int]:
    """Accounts whose kept balance predates a class change of one of their credits (an expiry
    due, or a credit coming into effect)."""
    query = select(accounts.c.seq).where(accounts.c.bal_valid_through < today)
    if org_seq is not None:
        query = query.where(accounts.c.org_seq == org_seq)
    return [row.seq for row in await conn.execute(query.order_by(accounts.c.seq))]
