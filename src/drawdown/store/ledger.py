"""Queries for accounts' balances, credits and their transactions."""

from collections.abc import Iterable, Sequence
from datetime import date
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from drawdown.ledger.credit import CreditStatus, TransactionType
from drawdown.store.records import AccountRecord, CreditRecord, TransactionRecord
from drawdown.store.tables import accounts, credit_transactions, credits


async def find_account(
    conn: AsyncConnection, org_seq: int, account_id: str, *, lock: bool = False
) -> AccountRecord | None:
    """The account, or None; with `lock`, held FOR UPDATE until the transaction ends."""
    query = select(accounts).where(accounts.c.org_seq == org_seq, accounts.c.id == account_id)
    if lock:
        query = query.with_for_update()
    row = (await conn.execute(query)).first()
    return AccountRecord.from_row(row) if row else None


async def lock_account_by_seq(conn: AsyncConnection, account_seq: int) -> AccountRecord:
    query = select(accounts).where(accounts.c.seq == account_seq).with_for_update()
    return AccountRecord.from_row((await conn.execute(query)).one())


async def save_balance(conn: AsyncConnection, account: AccountRecord) -> None:
    totals = account.totals
    await conn.execute(
        update(accounts)
        .where(accounts.c.seq == account.seq)
        .values(
            bal_active_amount=totals.active_amount,
            bal_applicable_left=totals.applicable_left,
            bal_applicable_held=totals.applicable_held,
            bal_inapplicable_left=totals.inapplicable_left,
            bal_valid_through=account.valid_through,
            bal_updated_at=account.balance_updated_at,
        )
    )


async def insert_credit(conn: AsyncConnection, values: dict[str, Any]) -> int:
    result = await conn.execute(credits.insert().values(**values).returning(credits.c.seq))
    return int(result.scalar_one())


async def save_credit(conn: AsyncConnection, credit: CreditRecord) -> None:
    amounts = credit.amounts
    await conn.execute(
        update(credits)
        .where(credits.c.seq == credit.seq)
        .values(
            status=credit.status.value,
            consumed_amount=amounts.consumed,
            hold_amount=amounts.held,
            expired_amount=amounts.expired,
            voided_amount=amounts.voided,
            updated_at=credit.updated_at,
        )
    )


async def insert_transactions(
    conn: AsyncConnection, rows: Sequence[tuple[int, TransactionRecord]]
) -> None:
    """Append ledger lines, each given with the seq of its credit."""
    if not rows:
        return
    await conn.execute(
        credit_transactions.insert(),
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
    query = select(credits).where(credits.c.id == credit_id, credits.c.org_seq == org_seq)
    row = (await conn.execute(query)).first()
    return CreditRecord.from_row(row) if row else None


async def find_credit_by_idempotency_key(
    conn: AsyncConnection, org_seq: int, key: str
) -> CreditRecord | None:
    query = select(credits).where(credits.c.org_seq == org_seq, credits.c.idempotency_key == key)
    row = (await conn.execute(query)).first()
    return CreditRecord.from_row(row) if row else None


async def credits_by_seq(conn: AsyncConnection, seqs: Iterable[int]) -> dict[int, CreditRecord]:
    wanted = list(set(seqs))
    if not wanted:
        return {}
    rows = await conn.execute(select(credits).where(credits.c.seq.in_(wanted)))
    return {row.seq: CreditRecord.from_row(row) for row in rows}


async def credits_by_id(
    conn: AsyncConnection, account_seq: int, ids: Iterable[str]
) -> dict[str, CreditRecord]:
    wanted = list(set(ids))
    if not wanted:
        return {}
    query = select(credits).where(credits.c.account_seq == account_seq, credits.c.id.in_(wanted))
    return {row.id: CreditRecord.from_row(row) for row in await conn.execute(query)}


async def active_credits(conn: AsyncConnection, account_seq: int) -> list[CreditRecord]:
    query = (
        select(credits)
        .where(credits.c.account_seq == account_seq, credits.c.status == CreditStatus.ACTIVE.value)
        .order_by(credits.c.seq)
    )
    return [CreditRecord.from_row(row) for row in await conn.execute(query)]


async def account_credits(conn: AsyncConnection, account_seq: int) -> list[CreditRecord]:
    query = select(credits).where(credits.c.account_seq == account_seq).order_by(credits.c.seq)
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
