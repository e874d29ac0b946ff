"""How a usage event's content and results are kept (`usage_events.content`, `.results`), the
same on both engines: values as exact decimal text, never JSON numbers, so no driver or JSON
library can read one through a float."""

from datetime import datetime
from decimal import Decimal
from typing import Any

import msgspec

from drawdown.ledger.usage_records import PendingEvent


class Content(msgspec.Struct):
    # name, exact value (kept as text; msgspec reads the text straight into a Decimal), unit
    attributes: list[tuple[str, Decimal, str | None]]
    dimensions: dict[str, str]


def pending_event(
    seq: int, account_seq: int, event_id: str, schema_name: str, at: datetime, content: Content
) -> PendingEvent:
    return PendingEvent(
        seq=seq,
        account_seq=account_seq,
        id=event_id,
        schema_name=schema_name,
        timestamp=at,
        attributes={name: value for name, value, _ in content.attributes},
        dimensions=content.dimensions,
    )


def content_of(stored: Any) -> Content:
    """The content as a JSON column gives it back (already decoded)."""
    return msgspec.convert(stored, Content)
