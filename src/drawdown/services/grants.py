"""Granting credits: batches all or nothing, idempotency keys, back-dated grants."""

from datetime import date, datetime
from typing import Any

from sqlalchemy.ext.asyncio import AsyncConnection

from drawdown.clock import Clock
from drawdown.errors import BadRequest, Conflict, NotFound
from drawdown.ledger.balance import NO_TOTALS, contribution, earliest, last_stable_day
from drawdown.ledger.credit import CreditAmounts, CreditStatus, TransactionType, is_past_until
from drawdown.ledger.ids import CREDIT_PREFIX, new_id
from drawdown.ledger.money import ZERO
from drawdown.ledger.records import AccountRecord, CreditRecord
from drawdown.ledger.requests import GrantRequest
from drawdown.services.book import Book, add_totals, ledger_line
from drawdown.store import ledger as store


def _check_batch(requests: list[GrantRequest]) -> None:
    keys_seen: set[str] = set()
    for index, request in enumerate(requests):
        where = f"creditRequests[{index}]" if len(requests) > 1 else "request"
        if request.effective_until and request.effective_until < request.effective_from:
            raise BadRequest(
                f"{where}.effectiveUntil ({request.effective_until}) must not be before "
                f"effectiveFrom ({request.effective_from})"
            )
        if request.applicable_entity_ids is not None and len(
            set(request.applicable_entity_ids)
        ) != len(request.applicable_entity_ids):
            raise BadRequest(f"{where}.applicableEntityIds must not repeat an entity id")
        key = request.idempotency_key
        if key is not None:
            if key in keys_seen:
                raise BadRequest(f"{where}.idempotencyKey '{key}' appears twice in this batch")
            keys_seen.add(key)


async def grant(
    conn: AsyncConnection, org_seq: int, requests: list[GrantRequest], clock: Clock
) -> list[CreditRecord]:
    """Grant every request or none."""
    _check_batch(requests)
    if conn.dialect.name == "postgresql":
        granted = await _grant_adding_to_balances(conn, org_seq, requests, clock)
        if granted is not None:
            return granted
    return await _grant_under_account_locks(conn, org_seq, requests, clock)


async def _grant_under_account_locks(
    conn: AsyncConnection, org_seq: int, requests: list[GrantRequest], clock: Clock
) -> list[CreditRecord]:
    """Lock the accounts (in id order, so batches never deadlock), then grant through their
    books. Serves SQLite, back-dated grants, and accounts whose balance must be recounted."""
    books: dict[str, Book] = {}
    for account_id in sorted({request.account_id for request in requests}):
        account = await store.find_account(conn, org_seq, account_id, lock=True)
        if account is None:
            raise NotFound(f"account '{account_id}' was not found")
        books[account_id] = await Book.open(conn, account, clock)

    granted: dict[int, CreditRecord] = {}
    for index in _in_key_order(requests):
        request = requests[index]
        book = books[request.account_id]
        fingerprint = request.fingerprint()
        if request.idempotency_key is not None:
            earlier = await store.find_credit_by_idempotency_key(
                conn, org_seq, request.idempotency_key
            )
            if earlier is not None:
                granted[index] = _same_request(earlier, request, fingerprint)
                continue
        credit, values = _new_credit(book.account, request, fingerprint, book.now)
        credit.seq = await store.insert_credit(conn, values)
        await _credited(conn, credit, book.now)
        book.added(credit)
        granted[index] = credit
    for book in books.values():
        await book.save()
    return [granted[index] for index in range(len(requests))]


async def _grant_adding_to_balances(
    conn: AsyncConnection, org_seq: int, requests: list[GrantRequest], clock: Clock
) -> list[CreditRecord] | None:
    """PostgreSQL: insert the credits first, then add them to each account's balance in one
    UPDATE, which locks the account only from there to the commit. A grant only adds to a
    balance, so it needs nothing read under the lock, provided the balance holds on the
    writer's day (the UPDATE checks it). None when the locked path must serve."""
    now = clock.now()
    today = now.date()
    if any(is_past_until(request.effective_until, today) for request in requests):
        return None
    accounts: dict[str, AccountRecord] = {}
    for account_id in sorted({request.account_id for request in requests}):
        account = await store.find_account(conn, org_seq, account_id)
        if account is None:
            raise NotFound(f"account '{account_id}' was not found")
        if not _holds_on(account, today):
            return None
        accounts[account_id] = account

    granted: dict[int, CreditRecord] = {}
    added: dict[str, list[CreditRecord]] = {}
    for index in _in_key_order(requests):
        request = requests[index]
        fingerprint = request.fingerprint()
        credit, values = _new_credit(accounts[request.account_id], request, fingerprint, now)
        seq = await store.insert_credit_unless_key_taken(conn, values)
        if seq is None:
            assert request.idempotency_key is not None
            earlier = await store.find_credit_by_idempotency_key(
                conn, org_seq, request.idempotency_key
            )
            assert earlier is not None, "a conflicting idempotency key must belong to a credit"
            granted[index] = _same_request(earlier, request, fingerprint)
            continue
        credit.seq = seq
        await _credited(conn, credit, now)
        added.setdefault(request.account_id, []).append(credit)
        granted[index] = credit

    for account_id in sorted(added):
        delta, through = NO_TOTALS, None
        for credit in added[account_id]:
            delta = add_totals(
                delta,
                contribution(
                    credit.status,
                    credit.amounts,
                    credit.effective_from,
                    credit.effective_until,
                    today,
                ),
            )
            through = earliest(
                through,
                last_stable_day(
                    credit.status, credit.effective_from, credit.effective_until, today
                ),
            )
        account = accounts[account_id]
        if not await store.add_to_balance(conn, account.seq, delta, through, now):
            # The balance no longer holds on this writer's day (a day boundary passed, or a
            # writer with a later clock counted it for a later day): recount it under the
            # lock, which counts the credits this transaction inserted as of the later day.
            locked = await store.lock_account_by_seq(conn, account.seq)
            book = await Book.open(conn, locked, clock, recount=True)
            await book.save()
    return [granted[index] for index in range(len(requests))]


def _in_key_order(requests: list[GrantRequest]) -> list[int]:
    """The order to insert a batch's credits in: by idempotency key, so that two batches
    sharing keys take their locks in the same order and never deadlock (answers keep the
    request order)."""
    return sorted(
        range(len(requests)),
        key=lambda i: (requests[i].idempotency_key is None, requests[i].idempotency_key or ""),
    )


def _holds_on(account: AccountRecord, day: date) -> bool:
    """Whether the account's kept totals are the right ones on `day`."""
    through = account.valid_through
    return account.as_of <= day and (through is None or day <= through)


def _same_request(earlier: CreditRecord, request: GrantRequest, fingerprint: str) -> CreditRecord:
    if earlier.request_hash != fingerprint:
        raise Conflict(
            f"idempotencyKey '{request.idempotency_key}' was already used for a "
            "different credit request; use a new key for a new grant"
        )
    return earlier


async def _credited(conn: AsyncConnection, credit: CreditRecord, now: datetime) -> None:
    line = ledger_line(credit, TransactionType.CREDITED, credit.amounts.credit_amount, now)
    await store.insert_transactions(conn, [(credit.seq, line)])


def _new_credit(
    account: AccountRecord, request: GrantRequest, fingerprint: str, now: datetime
) -> tuple[CreditRecord, dict[str, Any]]:
    credit = CreditRecord(
        seq=0,
        org_seq=account.org_seq,
        account_seq=account.seq,
        id=new_id(CREDIT_PREFIX),
        account_id=account.id,
        customer_id=account.customer_id,
        credit_unit=account.invoice_currency,
        purpose=request.purpose,
        applicable_entity_ids=(
            list(request.applicable_entity_ids)
            if request.applicable_entity_ids is not None
            else None
        ),
        effective_from=request.effective_from,
        effective_until=request.effective_until,
        priority=request.priority,
        grantor_id=request.grantor_id,
        idempotency_key=request.idempotency_key,
        request_hash=fingerprint,
        status=CreditStatus.ACTIVE,
        amounts=CreditAmounts(request.credit_amount),
        created_at=now,
        updated_at=now,
    )
    values = {
        "org_seq": credit.org_seq,
        "account_seq": credit.account_seq,
        "id": credit.id,
        "account_id": credit.account_id,
        "customer_id": credit.customer_id,
        "credit_unit": credit.credit_unit,
        "purpose": credit.purpose,
        "applicable_entity_ids": credit.applicable_entity_ids,
        "effective_from": credit.effective_from,
        "effective_until": credit.effective_until,
        "credit_amount": credit.amounts.credit_amount,
        "priority": credit.priority,
        "grantor_id": credit.grantor_id,
        "idempotency_key": credit.idempotency_key,
        "request_hash": fingerprint,
        "status": credit.status.value,
        "consumed_amount": ZERO,
        "hold_amount": ZERO,
        "expired_amount": ZERO,
        "voided_amount": ZERO,
        "created_at": now,
        "updated_at": now,
    }
    return credit, values
