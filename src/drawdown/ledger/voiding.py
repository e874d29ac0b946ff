"""Voiding a credit: what is available goes into one VOIDED line; what is held stays held
until its application is captured or released."""

from datetime import datetime

from drawdown.errors import BadRequest, NotFound
from drawdown.ledger.changes import Changes, Loaded
from drawdown.ledger.credit import effective_status, void_refusal
from drawdown.ledger.draft import Draft
from drawdown.ledger.records import CreditRecord


def void(
    loaded: Loaded, org_seq: int, credit_id: str, now: datetime
) -> tuple[CreditRecord, Changes]:
    """Void the credit, judged as of its account's book day (after that account is brought
    up to date, so a credit past its last day is refused as expired)."""
    found = loaded.credits.get(credit_id)
    if found is None or found.org_seq != org_seq:
        raise NotFound(f"credit '{credit_id}' was not found")
    draft = Draft(loaded, now)
    book = draft.book(found.account_seq)
    current = draft.credit(credit_id)
    assert current is not None
    refusal = void_refusal(effective_status(current.status, current.effective_until, book.today))
    if refusal:
        raise BadRequest(f"credit '{credit_id}' cannot be voided: {refusal}")
    credit = draft.edit(current)
    book.void(credit)
    return credit, draft.changes()
