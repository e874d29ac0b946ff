"""Usage events as the rules see them (docs/usage.md, "Ingestion"): their content, what makes
two of them the same event, and why one is refused."""

import functools
import hashlib
import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import msgspec

from drawdown.errors import shown
from drawdown.ledger.money import AmountError, check_amount, format_amount
from drawdown.ledger.usage import CostOutOfRange, Meter, MeterStatus, matches, price, quantity

_encoder = msgspec.json.Encoder()

# Togai keeps event ids 45 days; an event older than that could be accepted twice
EVENT_WINDOW = timedelta(days=45)
FUTURE_SLACK = timedelta(minutes=5)
MAX_EVENT_ID_LENGTH = 512

_VALUE = re.compile(r"[0-9]+(\.[0-9]+)?")
# the usual value: no leading zeros, at most 18 digits before the point, at most 10 after and
# none of them a trailing zero (what `check_amount` would give back unchanged)
_CANONICAL = re.compile(r"(0|[1-9][0-9]{0,17})(\.[0-9]{0,9}[1-9])?")
_EVENT_ID = re.compile(r"[^\s/\x00-\x1f\x7f-\x9f]{1,512}")
# ISO 8601 as datetime.fromisoformat reads it, but never more than microseconds
_TOO_FINE = re.compile(r"[.,][0-9]{7,}")


class Refused(ValueError):
    """Why an event is refused, in words that name the field."""


@dataclass(frozen=True)
class NewEvent:
    """An event to ingest, checked for shape: values exact, timestamp in UTC."""

    id: str
    schema_name: str
    account_id: str
    timestamp: datetime
    # name -> (exact value, unit); names are unique
    attributes: dict[str, tuple[Decimal, str | None]]
    dimensions: dict[str, str]

    def values(self) -> dict[str, Decimal]:
        return {name: value for name, (value, _) in self.attributes.items()}

    def content(self) -> dict[str, Any]:
        """What is stored to price it later: values as exact text, in a canonical order."""
        return {
            "attributes": [
                [name, format_amount(value), unit]
                for name, (value, unit) in sorted(self.attributes.items())
            ],
            "dimensions": dict(sorted(self.dimensions.items())),
        }

    @property
    def content_json(self) -> str:
        return self._identity()[0]

    def content_hash(self) -> str:
        """The event's identity beyond its id: a resend with the same hash is the same event
        (the timestamp as an instant, values exactly, attributes and dimensions unordered).
        Stored with the event, so its bytes never change (tests/test_usage_rules.py pins
        them)."""
        return self._identity()[1]

    def _identity(self) -> tuple[str, str]:
        # computed once, on first use (ingestion asks for it per event: functools'
        # cached_property takes a lock per read on Python 3.11, which cost more than the hash)
        found: tuple[str, str] | None = self.__dict__.get("_identity_found")
        if found is None:
            content = _encoder.encode(self.content())
            at = self.timestamp
            instant = (at if at.tzinfo is UTC else at.astimezone(UTC)).isoformat(
                timespec="microseconds"
            )
            canonical = _encoder.encode([self.schema_name, self.account_id, instant])
            found = (content.decode(), hashlib.sha256(canonical + content).hexdigest())
            object.__setattr__(self, "_identity_found", found)
        return found


def check_event_id(value: str) -> str:
    if not _EVENT_ID.fullmatch(value):
        raise Refused(
            f"id: must be 1 to {MAX_EVENT_ID_LENGTH} visible characters without '/', "
            f"whitespace or control characters, not {shown(value)}"
            + ("" if len(value) <= MAX_EVENT_ID_LENGTH else f" ({len(value)} characters)")
        )
    return value


def parse_value(index: int, name: str, text: str) -> Decimal:
    """The value of attribute `name`, the event's `index`th: a plain non-negative decimal
    within an amount's digits."""
    if not _VALUE.fullmatch(text):
        raise Refused(
            f"attributes[{index}].value: the value of {shown(name)} must be a non-negative "
            f'decimal number written as digits with an optional fraction, such as "1520" or '
            f'"0.25", not {shown(text)}'
        )
    if _CANONICAL.fullmatch(text):
        return Decimal(text)  # already within an amount's digits, without trailing zeros
    try:
        return check_amount(Decimal(text))
    except AmountError as error:
        raise Refused(
            f"attributes[{index}].value: the value of {shown(name)} {error}, not {shown(text)}"
        ) from None


@functools.lru_cache(maxsize=4096)  # events of a batch often share a second
def parse_timestamp(text: str) -> datetime:
    """ISO 8601; without an offset it is UTC; at most microseconds."""
    if _TOO_FINE.search(text):
        raise Refused(
            f"timestamp: at most 6 decimals of a second (microseconds) are kept, not {shown(text)}"
        )
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        raise Refused(
            f"timestamp: must be an ISO 8601 time such as 2026-11-25T10:00:00Z, not {shown(text)}"
        ) from None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    try:
        return parsed.astimezone(UTC)
    except OverflowError:  # 0001-01-01T00:00+01:00 is before the first instant there is
        raise Refused(f"timestamp: {shown(text)} is out of range") from None


def check_window(timestamp: datetime, now: datetime) -> None:
    if timestamp < now - EVENT_WINDOW:
        raise Refused(
            f"timestamp: {_shown(timestamp)} is more than {EVENT_WINDOW.days} days old; events "
            "are accepted within the window their ids are kept for"
        )
    if timestamp > now + FUTURE_SLACK:
        raise Refused(
            f"timestamp: {_shown(timestamp)} is more than "
            f"{int(FUTURE_SLACK.total_seconds() // 60)} minutes in the future"
        )


def check_against_meters(event: NewEvent, meters: list[Meter]) -> None:
    """Refuse what an ACTIVE meter could not price: a SUM meter's attribute missing, or a cost
    no amount can hold (at the rate in effect at the event's timestamp)."""
    values = event.values()
    for meter in meters:
        if meter.status is not MeterStatus.ACTIVE:
            continue
        if meter.attribute is not None and meter.attribute not in values:
            if matches(meter, event.schema_name, {meter.attribute: Decimal(0)}, event.dimensions):
                raise Refused(
                    f"attributes: meter '{meter.id}' sums attribute '{meter.attribute}', "
                    "which this event lacks"
                )
            continue
        if not matches(meter, event.schema_name, values, event.dimensions):
            continue
        rate = meter.rate_at(event.timestamp)
        if rate is None:
            continue
        try:
            price(quantity(meter, values), rate)
        except CostOutOfRange:
            raise Refused(
                f"attributes: on meter '{meter.id}' this event would cost 10^18 or more, "
                "which no amount can hold"
            ) from None


def _shown(timestamp: datetime) -> str:
    return timestamp.astimezone(UTC).isoformat().replace("+00:00", "Z")
