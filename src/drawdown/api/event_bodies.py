"""The ingest bodies decoded with msgspec (the hot path): the envelope at once, then each event
on its own, so a bad event is refused alone with a reason that names its field, and the others
go on. Shape first (types, lengths, no unknown or repeated keys, no NUL), then the rules'
checks of ledger/events.py (the id, exact values, the timestamp).

A body whose envelope is not right (`{"events": [1..1000 items]}`, `{"event": {...}}`) is not
decoded here: the documented models (api/usage_schemas.py) judge it, in their words."""

import json
import re
from dataclasses import dataclass
from typing import Annotated, Any

import msgspec
from msgspec import UNSET, Meta, Raw, Struct, UnsetType

from drawdown.api.bodies import no_key_repeated
from drawdown.errors import first_repeat, shown
from drawdown.ledger.events import (
    NewEvent,
    Refused,
    check_event_id,
    parse_timestamp,
    parse_value,
)

Name = Annotated[str, Meta(min_length=1, max_length=50)]
Label = Annotated[str, Meta(min_length=1, max_length=200)]
MAX_BATCH = 1000


class AttributeStruct(Struct, forbid_unknown_fields=True):
    name: Name
    value: str
    unit: Name | None = None


class EventStruct(Struct, forbid_unknown_fields=True, kw_only=True):
    schemaName: Name
    id: str | None = None
    timestamp: str
    accountId: Annotated[str, Meta(min_length=1, max_length=512)]
    attributes: Annotated[list[AttributeStruct], Meta(max_length=10)] | UnsetType = UNSET
    dimensions: dict[Label, Label] | UnsetType = UNSET


class _Single(Struct, forbid_unknown_fields=True):
    event: Raw


class _Batch(Struct, forbid_unknown_fields=True):
    events: Annotated[list[Raw], Meta(min_length=1, max_length=MAX_BATCH)]


_single = msgspec.json.Decoder(_Single)
_batch = msgspec.json.Decoder(_Batch)
_event = msgspec.json.Decoder(EventStruct)
_ENVELOPE_FAILURES = (msgspec.DecodeError, UnicodeDecodeError, RecursionError)


@dataclass(frozen=True)
class BadEvent:
    """An event refused for its shape: why, and its id when it has one that is a string."""

    reason: str
    id: str | None


@dataclass(frozen=True)
class Batch:
    """Each event of a batch, or why its shape is refused."""

    items: list[NewEvent | BadEvent]


def single(body: bytes) -> NewEvent | BadEvent | None:
    """The event of an /ingest body (or why it is refused); None when the documented model
    must judge the envelope."""
    try:
        decoded = _single.decode(body)
    except _ENVELOPE_FAILURES:
        return None
    if not _one_envelope_key(body, [decoded.event]):
        return None
    return event(bytes(decoded.event))


def batch(body: bytes) -> Batch | None:
    """The events of an /ingestBatch body; None when the documented model must judge the
    envelope (not an object with exactly `events`, a list of 1 to 1,000 items)."""
    try:
        decoded = _batch.decode(body)
    except _ENVELOPE_FAILURES:
        return None
    if not _one_envelope_key(body, decoded.events):
        return None
    return Batch([event(bytes(raw)) for raw in decoded.events])


def _one_envelope_key(body: bytes, items: list[Raw]) -> bool:
    """Whether the envelope writes its one key once. Outside the items the body holds only the
    envelope's keys and punctuation, so its colons there are exactly its keys."""
    return body.count(b":") - sum(bytes(item).count(b":") for item in items) == 1


def event(raw: bytes) -> NewEvent | BadEvent:
    """One event, or why it is refused."""
    found = _event_or_reason(raw)
    return found if isinstance(found, NewEvent) else BadEvent(found, _id_in(raw))


def _id_in(raw: bytes) -> str | None:
    try:
        decoded = msgspec.json.decode(raw)
    except _ENVELOPE_FAILURES:
        return None
    found = decoded.get("id") if isinstance(decoded, dict) else None
    return found if isinstance(found, str) else None


def _event_or_reason(raw: bytes) -> NewEvent | str:
    if b"\\u0000" in raw:
        return "the event must not contain the NUL character"
    try:
        decoded = _event.decode(raw)
    except msgspec.ValidationError as error:
        return _reason(str(error))
    except msgspec.DecodeError as error:
        return f"the event is not valid JSON: {error}"
    except (UnicodeDecodeError, RecursionError):
        return "the event is not valid JSON"
    keys = _keys_of(decoded)
    if raw.count(b":") != keys + _colons_in_strings(decoded) and not no_key_repeated(raw, keys):
        return _repeated_key(raw)
    try:
        if decoded.id is None:
            raise Refused("id: is required; without one a retry would be counted twice")
        attributes = [] if isinstance(decoded.attributes, UnsetType) else decoded.attributes
        repeat = first_repeat(attribute.name for attribute in attributes)
        if repeat is not None:
            raise Refused(
                f"attributes[{repeat[0]}].name: {shown(repeat[1])} appears twice; each "
                "attribute name may appear once"
            )
        return NewEvent(
            id=check_event_id(decoded.id),
            schema_name=decoded.schemaName,
            account_id=decoded.accountId,
            timestamp=parse_timestamp(decoded.timestamp),
            attributes={
                a.name: (parse_value(i, a.name, a.value), a.unit) for i, a in enumerate(attributes)
            },
            dimensions={} if isinstance(decoded.dimensions, UnsetType) else decoded.dimensions,
        )
    except Refused as refused:
        return str(refused)


class _Object(dict[str, Any]):
    """A JSON object as written, with the first key it writes twice."""

    repeated: str | None = None


def _object(pairs: list[tuple[str, Any]]) -> _Object:
    found = _Object(pairs)
    if len(found) < len(pairs):
        repeat = first_repeat(key for key, _ in pairs)
        found.repeated = repeat[1] if repeat is not None else None
    return found


def _repeated_key(raw: bytes) -> str:
    """Why an event that writes a key twice in one object is refused, naming the key and
    where it is (the rare case: the body is read again, keeping every key)."""
    pending: list[tuple[str, Any]] = [("", json.loads(raw, object_pairs_hook=_object))]
    while pending:
        path, value = pending.pop(0)
        if isinstance(value, _Object):
            if value.repeated is not None:
                if not path:
                    return f"{value.repeated}: appears twice in the event; write each field once"
                return f"{path}: {shown(value.repeated)} appears twice; write each name once"
            pending += [(f"{path}.{key}" if path else key, item) for key, item in value.items()]
        elif isinstance(value, list):
            pending += [(f"{path}[{index}]", item) for index, item in enumerate(value)]
    return "the event writes a key twice in one object"


def _keys_of(decoded: EventStruct) -> int:
    """The keys the decoded event holds: its fields given, its attributes', its dimensions."""
    given = 3 + (decoded.id is not None)
    if not isinstance(decoded.attributes, UnsetType):
        given += 1 + sum(2 + (a.unit is not None) for a in decoded.attributes)
    if not isinstance(decoded.dimensions, UnsetType):
        given += 1 + len(decoded.dimensions)
    return given


def _colons_in_strings(decoded: EventStruct) -> int:
    """The colons the event's strings hold (a timestamp has two): with its keys, all the colons
    its JSON text writes, unless a key repeats (or a colon was written escaped, which the
    closer look of `no_key_repeated` then settles)."""
    strings = [decoded.schemaName, decoded.timestamp, decoded.accountId, decoded.id or ""]
    if not isinstance(decoded.attributes, UnsetType):
        for a in decoded.attributes:
            strings += [a.name, a.value, a.unit or ""]
    if not isinstance(decoded.dimensions, UnsetType):
        strings += decoded.dimensions.keys()
        strings += decoded.dimensions.values()
    return sum(text.count(":") for text in strings)


_AT = re.compile(r"^(?P<message>.*?)(?: - at `\$(?P<path>[^`]*)`)?$", re.DOTALL)
_MISSING = re.compile(r"^Object missing required field `(?P<field>[^`]*)`$")
_UNKNOWN = re.compile(r"^Object contains unknown field `(?P<field>[^`]*)`$")


def _reason(message: str) -> str:
    """msgspec's words as a reason that names the field: `timestamp: Expected ...`."""
    found = _AT.match(message)
    assert found is not None
    text, path = found.group("message"), (found.group("path") or "").lstrip(".")
    missing = _MISSING.match(text)
    if missing:
        where = f"{path}.{missing.group('field')}" if path else missing.group("field")
        return f"{where}: is required"
    unknown = _UNKNOWN.match(text)
    if unknown:
        where = f"{path}.{unknown.group('field')}" if path else unknown.group("field")
        return f"{where}: is not a field of an event"
    return f"{path or 'the event'}: {text[:1].lower()}{text[1:]}"
