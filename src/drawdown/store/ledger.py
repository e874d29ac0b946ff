"""Queries for accounts' balances, credits and their transactions."""

from collections.abc import Iterable, Sequence
from datetime import date, datetime
from typing import Any

from sqlalchemy import Date, bindparam, case, func, literal_column, or_, select, text, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.ext.asyncio import AsyncConnection
from sqlalchemy.sql.elements import ColumnElement

from drawdown.ledger.balance import BalanceTotals
from drawdown.ledger.credit import CreditStatus, TransactionType
from drawdown.ledger.money import MAX_TOTAL_INTEGER_DIGITS
from drawdown.ledger.records import AccountRecord, CreditRecord, TransactionRecord
from drawdown.store.column_types import MoneyTotal, UtcDateTime
from drawdown.store.tables import accounts, credit_transactions, credits

# The statements of the hot paths are built once; building them per call cost more than
# running them.
_FIND_ACCOUNT = select(accounts).where(
    accounts.c.org_seq == bindparam("org_seq"), accounts.c.id == bindparam("account_id")
)
# FOR NO KEY UPDATE, not FOR UPDATE: a grant on the fast path holds the FOR KEY SHARE lock its
# credit's foreign key takes on the account row, then UPDATEs that row; a FOR UPDATE waiting in
# between would deadlock with it. The accounts' keys never change, so no writer needs more.
_LOCK_ACCOUNT = _FIND_ACCOUNT.with_for_update(key_share=True)
_LOCK_ACCOUNT_BY_SEQ = (
    select(accounts).where(accounts.c.seq == bindparam("seq")).with_for_update(key_share=True)
)
_SAVE_BALANCE = (
    update(accounts)
    .where(accounts.c.seq == bindparam("b_seq"))
    .values(
        bal_active_amount=bindparam("b_active_amount"),
        bal_applicable_left=bindparam("b_applicable_left"),
        bal_applicable_held=bindparam("b_applicable_held"),
        bal_inapplicable_left=bindparam("b_inapplicable_left"),
        bal_as_of=bindparam("b_as_of"),
        bal_valid_through=bindparam("b_valid_through"),
        bal_updated_at=bindparam("b_updated_at"),
    )
)
_INSERT_CREDIT = credits.insert().returning(credits.c.seq)
_SAVE_CREDIT = (
    update(credits)
    .where(credits.c.seq == bindparam("b_seq"))
    .values(
        status=bindparam("b_status"),
        consumed_amount=bindparam("b_consumed"),
        hold_amount=bindparam("b_held"),
        expired_amount=bindparam("b_expired"),
        voided_amount=bindparam("b_voided"),
        updated_at=bindparam("b_updated_at"),
    )
)
_INSERT_TRANSACTION = credit_transactions.insert()
_INSERT_CREDIT_UNLESS_KEY_TAKEN = (
    pg_insert(credits)
    .on_conflict_do_nothing(constraint="uq_credits_org_idempotency_key")
    .returning(credits.c.seq)
)
_NEW_THROUGH = bindparam("b_through", type_=Date())
_TODAY = bindparam("b_today", type_=Date())
# Written into the SQL: as a parameter it would be typed NUMERIC(38,10), which cannot hold it.
_TOTAL_LIMIT: ColumnElement[Any] = literal_column(str(10**MAX_TOTAL_INTEGER_DIGITS))
_NOW = bindparam("b_now", type_=UtcDateTime())
# Only when the kept totals hold on the writer's day: counted for that day or an earlier one
# (never a later one: that would apply an earlier day's arithmetic) and still valid through it.
_ADD_TO_BALANCE = (
    update(accounts)
    .where(
        accounts.c.seq == bindparam("b_seq"),
        accounts.c.bal_as_of <= _TODAY,
        # Past a total's 28 digits the locked path answers with a clear conflict.
        accounts.c.bal_active_amount + bindparam("d_active", type_=MoneyTotal) < _TOTAL_LIMIT,
        or_(
            accounts.c.bal_valid_through.is_(None),
            accounts.c.bal_valid_through >= _TODAY,
        ),
    )
    .values(
        bal_active_amount=accounts.c.bal_active_amount + bindparam("d_active", type_=MoneyTotal),
        bal_applicable_left=accounts.c.bal_applicable_left + bindparam("d_left", type_=MoneyTotal),
        bal_applicable_held=accounts.c.bal_applicable_held + bindparam("d_held", type_=MoneyTotal),
        bal_inapplicable_left=(
            accounts.c.bal_inapplicable_left + bindparam("d_pending", type_=MoneyTotal)
        ),
        bal_as_of=_TODAY,
        bal_valid_through=case(
            (_NEW_THROUGH.is_(None), accounts.c.bal_valid_through),
            (accounts.c.bal_valid_through.is_(None), _NEW_THROUGH),
            else_=func.least(accounts.c.bal_valid_through, _NEW_THROUGH),
        ),
        bal_updated_at=func.greatest(accounts.c.bal_updated_at, _NOW),
    )
    .returning(accounts.c.seq)
)
_FIND_CREDIT = select(credits).where(
    credits.c.id == bindparam("credit_id"), credits.c.org_seq == bindparam("org_seq")
)
_FIND_CREDIT_BY_KEY = select(credits).where(
    credits.c.org_seq == bindparam("org_seq"), credits.c.idempotency_key == bindparam("key")
)
_CREDITS_BY_ID = select(credits).where(
    credits.c.account_seq == bindparam("account_seq"),
    credits.c.id.in_(bindparam("ids", expanding=True)),
)


async def find_account(
    conn: AsyncConnection, org_seq: int, account_id: str, *, lock: bool = False
) -> AccountRecord | None:
    """The account, or None; with `lock`, held (FOR NO KEY UPDATE) until the transaction ends."""
    query = _LOCK_ACCOUNT if lock else _FIND_ACCOUNT
    row = (await conn.execute(query, {"org_seq": org_seq, "account_id": account_id})).first()
    return AccountRecord.from_row(row) if row else None


async def lock_account_by_seq(conn: AsyncConnection, account_seq: int) -> AccountRecord:
    row = (await conn.execute(_LOCK_ACCOUNT_BY_SEQ, {"seq": account_seq})).one()
    return AccountRecord.from_row(row)


async def save_balance(conn: AsyncConnection, account: AccountRecord) -> None:
    totals = account.totals
    await conn.execute(
        _SAVE_BALANCE,
        {
            "b_seq": account.seq,
            "b_active_amount": totals.active_amount,
            "b_applicable_left": totals.applicable_left,
            "b_applicable_held": totals.applicable_held,
            "b_inapplicable_left": totals.inapplicable_left,
            "b_as_of": account.as_of,
            "b_valid_through": account.valid_through,
            "b_updated_at": account.balance_updated_at,
        },
    )


async def insert_credit(conn: AsyncConnection, values: dict[str, Any]) -> int:
    result = await conn.execute(_INSERT_CREDIT, values)
    return int(result.scalar_one())


async def insert_credit_unless_key_taken(
    conn: AsyncConnection, values: dict[str, Any]
) -> int | None:
    """PostgreSQL: insert, or None when the organization already has the idempotency key
    (waiting for a concurrent grant with the same key to commit or roll back first)."""
    result = await conn.execute(_INSERT_CREDIT_UNLESS_KEY_TAKEN, values)
    seq = result.scalar()
    return int(seq) if seq is not None else None


async def add_to_balance(
    conn: AsyncConnection,
    account_seq: int,
    delta: BalanceTotals,
    valid_through: date | None,
    now: datetime,
) -> bool:
    """PostgreSQL: add to the kept balance in one locking UPDATE, unless the balance does not
    hold on the writer's day: older than a day boundary since, or counted for a later day
    (then False: the caller recounts under the account's lock)."""
    params = {
        "b_seq": account_seq,
        "b_today": now.date(),
        "d_active": delta.active_amount,
        "d_left": delta.applicable_left,
        "d_held": delta.applicable_held,
        "d_pending": delta.inapplicable_left,
        "b_through": valid_through,
        "b_now": now,
    }
    return (await conn.execute(_ADD_TO_BALANCE, params)).first() is not None


_WRITE_BOOK = text(
    """
    WITH changed AS (
        UPDATE credits AS c
        SET status = v.status, consumed_amount = v.consumed, hold_amount = v.held,
            expired_amount = v.expired, voided_amount = v.voided, updated_at = v.updated_at
        FROM unnest(CAST(:c_seq AS bigint[]), CAST(:c_status AS text[]),
                    CAST(:c_consumed AS numeric[]), CAST(:c_held AS numeric[]),
                    CAST(:c_expired AS numeric[]), CAST(:c_voided AS numeric[]),
                    CAST(:c_updated_at AS timestamptz[]))
             AS v(seq, status, consumed, held, expired, voided, updated_at)
        WHERE c.seq = v.seq
        RETURNING 1
    ), lines AS (
        INSERT INTO credit_transactions
            (credit_seq, id, transaction_type, invoice_id, entity_id, amount, created_at)
        SELECT * FROM unnest(CAST(:l_credit_seq AS bigint[]), CAST(:l_id AS text[]),
                             CAST(:l_type AS text[]), CAST(:l_invoice_id AS text[]),
                             CAST(:l_entity_id AS text[]), CAST(:l_amount AS numeric[]),
                             CAST(:l_created_at AS timestamptz[]))
        RETURNING 1
    ), balance AS (
        UPDATE accounts
        SET bal_active_amount = :b_active_amount, bal_applicable_left = :b_applicable_left,
            bal_applicable_held = :b_applicable_held,
            bal_inapplicable_left = :b_inapplicable_left, bal_as_of = :b_as_of,
            bal_valid_through = :b_valid_through, bal_updated_at = :b_updated_at
        WHERE seq = :b_seq
        RETURNING 1
    )
    SELECT (SELECT count(*) FROM changed) AS credits,
           (SELECT count(*) FROM lines) AS lines,
           (SELECT count(*) FROM balance) AS balances
    """
)


async def write_book(
    conn: AsyncConnection,
    changed: Sequence[CreditRecord],
    lines: Sequence[tuple[int, TransactionRecord]],
    balance_of: AccountRecord | None,
) -> None:
    """Write changed credits, new ledger lines and an account's balance: on PostgreSQL in one
    statement (one round trip while the account is locked), elsewhere one by one."""
    if not (changed or lines or balance_of):
        return
    if conn.dialect.name != "postgresql":
        for credit in changed:
            await save_credit(conn, credit)
        await insert_transactions(conn, lines)
        if balance_of is not None:
            await save_balance(conn, balance_of)
        return
    totals = balance_of.totals if balance_of else None
    params = {
        "c_seq": [c.seq for c in changed],
        "c_status": [c.status.value for c in changed],
        "c_consumed": [c.amounts.consumed for c in changed],
        "c_held": [c.amounts.held for c in changed],
        "c_expired": [c.amounts.expired for c in changed],
        "c_voided": [c.amounts.voided for c in changed],
        "c_updated_at": [c.updated_at for c in changed],
        "l_credit_seq": [seq for seq, _ in lines],
        "l_id": [line.id for _, line in lines],
        "l_type": [line.transaction_type.value for _, line in lines],
        "l_invoice_id": [line.invoice_id for _, line in lines],
        "l_entity_id": [line.entity_id for _, line in lines],
        "l_amount": [line.amount for _, line in lines],
        "l_created_at": [line.created_at for _, line in lines],
        "b_seq": balance_of.seq if balance_of else -1,
        "b_active_amount": totals.active_amount if totals else None,
        "b_applicable_left": totals.applicable_left if totals else None,
        "b_applicable_held": totals.applicable_held if totals else None,
        "b_inapplicable_left": totals.inapplicable_left if totals else None,
        "b_as_of": balance_of.as_of if balance_of else None,
        "b_valid_through": balance_of.valid_through if balance_of else None,
        "b_updated_at": balance_of.balance_updated_at if balance_of else None,
    }
    written = (await conn.execute(_WRITE_BOOK, params)).one()
    expected = (len(changed), len(lines), 1 if balance_of else 0)
    assert tuple(written) == expected, f"wrote {tuple(written)}, meant {expected}"


async def save_credit(conn: AsyncConnection, credit: CreditRecord) -> None:
    amounts = credit.amounts
    await conn.execute(
        _SAVE_CREDIT,
        {
            "b_seq": credit.seq,
            "b_status": credit.status.value,
            "b_consumed": amounts.consumed,
            "b_held": amounts.held,
            "b_expired": amounts.expired,
            "b_voided": amounts.voided,
            "b_updated_at": credit.updated_at,
        },
    )


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


async def find_credit_by_idempotency_key(
    conn: AsyncConnection, org_seq: int, key: str
) -> CreditRecord | None:
    row = (await conn.execute(_FIND_CREDIT_BY_KEY, {"org_seq": org_seq, "key": key})).first()
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
