"""Granting credits: batches all or nothing, idempotency keys, back-dated grants."""

from datetime import datetime

from drawdown.errors import BadRequest, Conflict
from drawdown.ledger.changes import Changes, Loaded
from drawdown.ledger.credit import CreditAmounts, CreditStatus
from drawdown.ledger.draft import Draft
from drawdown.ledger.ids import CREDIT_PREFIX, new_id
from drawdown.ledger.records import AccountRecord, CreditRecord
from drawdown.ledger.requests import GrantRequest


def grant(
    loaded: Loaded, org_seq: int, requests: list[GrantRequest], now: datetime
) -> tuple[list[CreditRecord], Changes]:
    """Grant every request or none; the credits answer in request order. A request whose
    idempotency key was used before answers with that credit (if it asked the same)."""
    check_batch(requests)
    draft = Draft(loaded, now)
    seqs = {
        account_id: draft.account_seq(org_seq, account_id)
        for account_id in sorted({request.account_id for request in requests})
    }
    books = {account_id: draft.book(seq) for account_id, seq in seqs.items()}
    granted: dict[int, CreditRecord] = {}
    for index in in_key_order(requests):
        request = requests[index]
        book = books[request.account_id]
        fingerprint = request.fingerprint()
        if request.idempotency_key is not None:
            earlier = draft.credit_by_key(org_seq, request.idempotency_key)
            if earlier is not None:
                granted[index] = same_request(earlier, request, fingerprint)
                continue
        credit = new_credit(book.account, request, fingerprint, now)
        draft.grant(credit)
        book.added(credit)
        granted[index] = credit
    return [granted[index] for index in range(len(requests))], draft.changes()


def check_batch(requests: list[GrantRequest]) -> None:
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


def in_key_order(requests: list[GrantRequest]) -> list[int]:
    """The order to grant a batch's credits in: by idempotency key, so that two batches
    sharing keys take their locks in the same order and never deadlock (answers keep the
    request order). New ids grow with time, so this is also the credits' id order."""
    return sorted(
        range(len(requests)),
        key=lambda i: (requests[i].idempotency_key is None, requests[i].idempotency_key or ""),
    )


def same_request(earlier: CreditRecord, request: GrantRequest, fingerprint: str) -> CreditRecord:
    if earlier.request_hash != fingerprint:
        raise Conflict(
            f"idempotencyKey '{request.idempotency_key}' was already used for a "
            "different credit request; use a new key for a new grant"
        )
    return earlier


def new_credit(
    account: AccountRecord, request: GrantRequest, fingerprint: str, now: datetime
) -> CreditRecord:
    return CreditRecord(
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
