"""Writing events (the outbox) with their deliveries, through SQLAlchemy: the SQLite write
store's save and the sweep's `credit.expiring_soon` on both engines use it. (The PostgreSQL
write store does the same inside its one save statement, `store/postgres.py`.)"""

from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import msgspec
from sqlalchemy import and_, literal, or_, select
from sqlalchemy.ext.asyncio import AsyncConnection

from drawdown.ledger.money import format_amount
from drawdown.ledger.outbox import OutboxEvent
from drawdown.store.tables import events, webhook_deliveries, webhook_endpoints

_encoder = msgspec.json.Encoder()
_DELIVERY_COLUMNS = [
    "endpoint_seq",
    "event_seq",
    "status",
    "attempts",
    "next_attempt_at",
    "created_at",
]


def _exact(value: Any) -> Any:
    """Amounts as plain number literals (`100`, `0.3`, never `1E+2`), however deep."""
    if isinstance(value, Decimal):
        return msgspec.Raw(format_amount(value).encode())
    if isinstance(value, dict):
        return {key: _exact(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_exact(item) for item in value]
    return value


def data_json(event: OutboxEvent) -> str:
    return _encoder.encode(_exact(event.data)).decode()


def types_column(types: list[str] | None) -> str | None:
    """`event_types` as stored: ",a,b," (a type is found by its commas), or None for all."""
    return "," + ",".join(types) + "," if types else None


async def insert_events(conn: AsyncConnection, outbox: list[OutboxEvent]) -> None:
    """The events, in order, each with a PENDING delivery to every enabled endpoint of its
    organization that takes its type, due at once (by the wall clock, which delivery keeps)."""
    due = datetime.now(UTC)
    for event in outbox:
        assert event.actor is not None, "an event is stored with its actor"
        seq = (
            await conn.execute(
                events.insert()
                .values(
                    id=event.id,
                    org_seq=event.org_seq,
                    type=event.type.value,
                    actor=event.actor,
                    account_seq=event.account_seq,
                    occurred_at=event.at,
                    data=data_json(event),
                )
                .returning(events.c.seq)
            )
        ).scalar_one()
        takers = select(
            webhook_endpoints.c.seq,
            literal(seq),
            literal("PENDING"),
            literal(0),
            literal(due, webhook_deliveries.c.created_at.type),
            literal(due, webhook_deliveries.c.created_at.type),
        ).where(
            and_(
                webhook_endpoints.c.org_seq == event.org_seq,
                webhook_endpoints.c.status == "ENABLED",
                or_(
                    webhook_endpoints.c.event_types.is_(None),
                    webhook_endpoints.c.event_types.contains(
                        f",{event.type.value},", autoescape=True
                    ),
                ),
            )
        )
        await conn.execute(
            webhook_deliveries.insert().from_select(
                [
                    "endpoint_seq",
                    "event_seq",
                    "status",
                    "attempts",
                    "next_attempt_at",
                    "created_at",
                ],
                takers,
            )
        )
