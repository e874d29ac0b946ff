"""`credit.expiring_soon` (docs/webhooks.md): once per credit, on or after `days` days before
its last day, while it is ACTIVE and not yet past that day."""

from datetime import date, datetime

from drawdown.ledger import shapes
from drawdown.ledger.credit import CreditStatus
from drawdown.ledger.money import add
from drawdown.ledger.outbox import SYSTEM, EventType, OutboxEvent, new_event
from drawdown.ledger.records import CreditRecord

DEFAULT_DAYS = 7
MAX_DAYS = 365


def is_due(credit: CreditRecord, today: date, days: int) -> bool:
    until = credit.effective_until
    if credit.status is not CreditStatus.ACTIVE or until is None or today > until:
        return False
    return (until - today).days <= days


def expiring_soon(credit: CreditRecord, days: int, now: datetime) -> OutboxEvent:
    assert credit.effective_until is not None
    data = {
        "credit": shapes.credit(credit, now.date()),
        "daysBefore": days,
        "lastDay": credit.effective_until.isoformat(),
        "remainingAmount": add(credit.amounts.available, credit.amounts.held),
    }
    event = new_event(EventType.CREDIT_EXPIRING_SOON, credit.org_seq, credit.account_seq, now, data)
    return OutboxEvent(**{**event.__dict__, "actor": SYSTEM})
