"""Events: what a change means to the outside world (docs/webhooks.md). A decision returns the
events it causes in its `Changes.outbox`, and the store writes them in the transaction of the
change, so an event exists exactly when its change committed."""

from dataclasses import dataclass, replace
from datetime import datetime
from enum import StrEnum
from typing import Any

from drawdown.ledger.ids import new_id

EVENT_PREFIX = "evt"
# the actor of what no request asked for: the expiry sweep, burn-down, day boundaries
SYSTEM = "system"


class EventType(StrEnum):
    CREDIT_GRANTED = "credit.granted"
    CREDIT_VOIDED = "credit.voided"
    CREDIT_EXPIRED = "credit.expired"
    CREDIT_CONSUMED = "credit.consumed"
    CREDIT_EXPIRING_SOON = "credit.expiring_soon"
    APPLICATION_HELD = "application.held"
    APPLICATION_DEBITED = "application.debited"
    APPLICATION_RELEASED = "application.released"
    WALLET_TOPPED_UP = "wallet.topped_up"
    WALLET_LOW = "wallet.low"
    WALLET_DEPLETED = "wallet.depleted"
    BALANCE_LOW = "balance.low"
    BALANCE_DEPLETED = "balance.depleted"
    USAGE_UNCOVERED = "usage.uncovered"


@dataclass(frozen=True)
class OutboxEvent:
    id: str
    org_seq: int
    type: EventType
    at: datetime
    # amounts as exact Decimals; the store writes them as number literals
    data: dict[str, Any]
    account_seq: int | None = None
    # the API key id of the request that made the change, or SYSTEM; None until the coalescer
    # stamps it with its write's actor (a decision does not know who asked)
    actor: str | None = None


def new_event(
    kind: EventType, org_seq: int, account_seq: int | None, at: datetime, data: dict[str, Any]
) -> OutboxEvent:
    return OutboxEvent(new_id(EVENT_PREFIX), org_seq, kind, at, data, account_seq)


def stamped(events: list[OutboxEvent], actor: str) -> list[OutboxEvent]:
    """The events with `actor` where none is named yet."""
    return [e if e.actor is not None else replace(e, actor=actor) for e in events]
