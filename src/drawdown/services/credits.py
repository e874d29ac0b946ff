"""Reading credits and balances. Reads never show a credit past its last day as
ACTIVE: when one is found, its account is brought up to today first (the sweep's work, early)."""

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime
from typing import TypeVar

from drawdown.clock import Clock
from drawdown.errors import NotFound
from drawdown.ledger.credit import CreditStatus, effective_status
from drawdown.ledger.records import AccountRecord, CreditRecord, TransactionRecord
from drawdown.services.paging import decode_token, encode_token
from drawdown.services.writes import Writes
from drawdown.store import json_reads
from drawdown.store import ledger as store
from drawdown.store.database import Database, FastReads
from drawdown.store.json_reads import JsonAnswer

T = TypeVar("T")

# the sweep locks this many accounts at a time, so it never holds thousands of locks at once
ACCOUNTS_PER_SWEEP_GROUP = 100


@dataclass(frozen=True)
class CreditDetails:
    credit: CreditRecord
    transactions: list[TransactionRecord]


@dataclass(frozen=True)
class CreditPage:
    credits: list[CreditRecord]
    next_token: str | None


def _is_stale(credit: CreditRecord, now: datetime) -> bool:
    return effective_status(credit.status, credit.effective_until, now.date()) != credit.status


async def bring_accounts_to_today(db: Database, account_seqs: list[int], clock: Clock) -> None:
    """Expire what is due and recount balances, a bounded number of accounts per transaction
    (each group retried like any write)."""
    writes = Writes(db.write_store(), clock)
    ordered = sorted(set(account_seqs))
    for start in range(0, len(ordered), ACCOUNTS_PER_SWEEP_GROUP):
        await writes.bring_to_today(ordered[start : start + ACCOUNTS_PER_SWEEP_GROUP])


async def _read_fresh(
    db: Database, clock: Clock, read: Callable[[], Awaitable[tuple[T, int | None]]]
) -> T:
    """Run `read`; when it reports a stale account (its second value), bring that account up
    to today and read once more."""
    for _ in range(2):
        value, stale_account = await read()
        if stale_account is None:
            return value
        await bring_accounts_to_today(db, [stale_account], clock)
    raise AssertionError("an account stayed stale after it was brought up to date")


async def _fresh_json(
    db: Database,
    clock: Clock,
    read: Callable[[FastReads], Awaitable[JsonAnswer | None]],
    missing: str,
) -> str:
    async def attempt() -> tuple[str, int | None]:
        answer = await read(await db.fast_pool())
        if answer is None:
            raise NotFound(missing)
        return answer.body, answer.account_seq if answer.stale else None

    return await _read_fresh(db, clock, attempt)


async def credit_details_json(db: Database, org_seq: int, credit_id: str, clock: Clock) -> str:
    """PostgreSQL only: the details as finished JSON, in one statement."""
    today = clock.now().date()
    return await _fresh_json(
        db,
        clock,
        lambda pool: json_reads.credit_details(pool, org_seq, credit_id, today),
        f"credit '{credit_id}' was not found",
    )


async def balance_json(db: Database, org_seq: int, account_id: str, clock: Clock) -> str:
    """PostgreSQL only: the balance as finished JSON, in one statement."""
    today = clock.now().date()
    return await _fresh_json(
        db,
        clock,
        lambda pool: json_reads.balance(pool, org_seq, account_id, today),
        f"account '{account_id}' was not found",
    )


async def credit_details(db: Database, org_seq: int, credit_id: str, clock: Clock) -> CreditDetails:
    now = clock.now()

    async def attempt() -> tuple[CreditDetails | None, int | None]:
        async with db.read() as conn:
            credit = await store.find_credit(conn, org_seq, credit_id)
            if credit is None:
                raise NotFound(f"credit '{credit_id}' was not found")
            if _is_stale(credit, now):
                return None, credit.account_seq
            return CreditDetails(credit, await store.transactions_of(conn, credit)), None

    details = await _read_fresh(db, clock, attempt)
    assert details is not None
    return details


async def list_credits(
    db: Database,
    org_seq: int,
    clock: Clock,
    *,
    page_size: int,
    next_token: str | None,
    status: CreditStatus | None,
    account_id: str | None,
    credit_id: str | None,
) -> CreditPage:
    after_seq = decode_token("credits", next_token)
    async with db.read() as conn:
        due = await store.accounts_due(conn, clock.now().date(), org_seq)
    if due:
        await bring_accounts_to_today(db, due, clock)
    async with db.read() as conn:
        page = await store.page_of_credits(
            conn,
            org_seq,
            after_seq=after_seq,
            limit=page_size + 1,
            statuses=[status.value] if status else None,
            account_id=account_id,
            credit_id=credit_id,
        )
    more = len(page) > page_size
    page = page[:page_size]
    return CreditPage(page, encode_token("credits", page[-1].seq) if more else None)


async def account_balance(
    db: Database, org_seq: int, account_id: str, clock: Clock
) -> AccountRecord:
    now = clock.now()

    async def attempt() -> tuple[AccountRecord, int | None]:
        async with db.read() as conn:
            account = await store.find_account(conn, org_seq, account_id)
        if account is None:
            raise NotFound(f"account '{account_id}' was not found")
        through = account.valid_through
        return account, account.seq if through is not None and now.date() > through else None

    return await _read_fresh(db, clock, attempt)
