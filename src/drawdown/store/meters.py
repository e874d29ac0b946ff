"""Queries for usage meters and their rates (both engines, through SQLAlchemy)."""

from collections import defaultdict
from collections.abc import Iterable
from datetime import datetime
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from drawdown.ledger.usage import Aggregation, Meter, MeterStatus, Rate
from drawdown.store.tables import usage_meter_rates, usage_meters


async def _with_rates(conn: AsyncConnection, rows: list[Any]) -> list[Meter]:
    if not rows:
        return []
    rates: dict[int, list[Rate]] = defaultdict(list)
    query = (
        select(usage_meter_rates)
        .where(usage_meter_rates.c.meter_seq.in_([row.seq for row in rows]))
        .order_by(usage_meter_rates.c.meter_seq, usage_meter_rates.c.seq)
    )
    for rate in await conn.execute(query):
        rates[rate.meter_seq].append(Rate(rate.credits, rate.per_quantity, rate.effective_from))
    return [
        Meter(
            seq=row.seq,
            org_seq=row.org_seq,
            id=row.id,
            name=row.name,
            event_schema_name=row.event_schema_name,
            aggregation=Aggregation(row.aggregation),
            attribute=row.attribute,
            filters=tuple((name, value) for name, value in row.filters),
            status=MeterStatus(row.status),
            rates=tuple(rates[row.seq]),
            created_at=row.created_at,
            updated_at=row.updated_at,
        )
        for row in rows
    ]


async def of_organizations(
    conn: AsyncConnection, org_seqs: Iterable[int]
) -> dict[int, list[Meter]]:
    """Every meter of these organizations, by id."""
    wanted = sorted(set(org_seqs))
    if not wanted:
        return {}
    query = (
        select(usage_meters)
        .where(usage_meters.c.org_seq.in_(wanted))
        .order_by(usage_meters.c.org_seq, usage_meters.c.id)
    )
    found: dict[int, list[Meter]] = {}
    for meter in await _with_rates(conn, list(await conn.execute(query))):
        found.setdefault(meter.org_seq, []).append(meter)
    return found


async def find(
    conn: AsyncConnection, org_seq: int, meter_id: str, *, lock: bool = False
) -> Meter | None:
    query = select(usage_meters).where(
        usage_meters.c.org_seq == org_seq, usage_meters.c.id == meter_id
    )
    if lock:
        query = query.with_for_update()
    found = await _with_rates(conn, list(await conn.execute(query)))
    return found[0] if found else None


async def page(conn: AsyncConnection, org_seq: int, *, after_seq: int, limit: int) -> list[Meter]:
    query = (
        select(usage_meters)
        .where(usage_meters.c.org_seq == org_seq, usage_meters.c.seq > after_seq)
        .order_by(usage_meters.c.seq)
        .limit(limit)
    )
    return await _with_rates(conn, list(await conn.execute(query)))


async def insert(conn: AsyncConnection, meter: Meter) -> None:
    """A new meter with its first rate."""
    result = await conn.execute(
        usage_meters.insert().returning(usage_meters.c.seq),
        {
            "org_seq": meter.org_seq,
            "id": meter.id,
            "name": meter.name,
            "event_schema_name": meter.event_schema_name,
            "aggregation": meter.aggregation.value,
            "attribute": meter.attribute,
            "filters": [list(pair) for pair in meter.filters],
            "status": meter.status.value,
            "created_at": meter.created_at,
            "updated_at": meter.updated_at,
        },
    )
    seq = int(result.scalar_one())
    for rate in meter.rates:
        await add_rate(conn, seq, rate, meter.created_at)


async def add_rate(conn: AsyncConnection, meter_seq: int, rate: Rate, now: datetime) -> None:
    await conn.execute(
        usage_meter_rates.insert(),
        {
            "meter_seq": meter_seq,
            "credits": rate.credits,
            "per_quantity": rate.per_quantity,
            "effective_from": rate.effective_from,
            "created_at": now,
        },
    )
    await touch(conn, meter_seq, now)


async def touch(
    conn: AsyncConnection, meter_seq: int, now: datetime, status: MeterStatus | None = None
) -> None:
    values: dict[str, Any] = {"updated_at": now}
    if status is not None:
        values["status"] = status.value
    await conn.execute(update(usage_meters).where(usage_meters.c.seq == meter_seq).values(values))
