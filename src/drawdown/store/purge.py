"""The clean-up of old usage events (docs/usage.md, "Retention and clean-up"): delete applied
events older than a cut-off, adding what they recorded to the kept sums first, so the running
totals and `drawdown verify` stay whole."""

from collections import defaultdict
from datetime import datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import and_, delete, select, tuple_, update
from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.ext.asyncio import AsyncConnection

from drawdown.ledger.money import ZERO, add
from drawdown.ledger.usage import EventStatus
from drawdown.ledger.usage_records import Charge, UsageSums
from drawdown.store.tables import accounts, usage_events, usage_purged, usage_purged_lines

_SUMS = ("quantity", "cost", "paid_by_credits", "paid_by_wallet", "uncovered", "events")


async def accounts_with_events_before(conn: AsyncConnection, cutoff: datetime) -> list[int]:
    """Accounts that may have events to purge (one index probe each)."""
    found = []
    for (seq,) in await conn.execute(select(accounts.c.seq).order_by(accounts.c.seq)):
        query = select(usage_events.c.seq).where(
            usage_events.c.account_seq == seq, usage_events.c.occurred_at < cutoff
        )
        if (await conn.execute(query.limit(1))).first() is not None:
            found.append(seq)
    return found


async def purge_some(conn: AsyncConnection, account_seq: int, cutoff: datetime, limit: int) -> int:
    """Delete up to `limit` of the account's applied events older than `cutoff`, keeping what
    they recorded; how many were deleted. Rows another transaction deleted first are not
    returned here, so no event is counted twice."""
    chosen = (
        select(usage_events.c.seq)
        .where(
            usage_events.c.account_seq == account_seq,
            usage_events.c.occurred_at < cutoff,
            usage_events.c.status != EventStatus.PENDING.value,
        )
        .order_by(usage_events.c.occurred_at, usage_events.c.id)
        .limit(limit)
    )
    deleted = await conn.execute(
        delete(usage_events)
        .where(usage_events.c.seq.in_(chosen.scalar_subquery()))
        .returning(usage_events.c.org_seq, usage_events.c.results)
    )
    sums: dict[tuple[int, int], UsageSums] = defaultdict(UsageSums)
    orgs: dict[tuple[int, int], int] = {}
    lines: dict[str, Decimal] = defaultdict(lambda: ZERO)
    count = 0
    for row in deleted:
        count += 1
        for stored in row.results or []:
            charge = Charge.from_stored(stored)
            key = (account_seq, charge.meter_seq)
            sums[key] = sums[key] + UsageSums.of(charge)
            orgs[key] = row.org_seq
            for allocation in charge.allocations:
                lines[allocation.line_id] = add(lines[allocation.line_id], allocation.amount)
    if conn.dialect.name == "postgresql":
        await _add_in_sql(conn, sums, orgs, lines)
    else:
        await _add_here(conn, sums, orgs, lines)
    return count


def _values(sums: UsageSums) -> dict[str, Any]:
    return {
        "quantity": sums.quantity,
        "cost": sums.cost,
        "paid_by_credits": sums.paid_by_credits,
        "paid_by_wallet": sums.paid_by_wallet,
        "uncovered": sums.uncovered,
        "events": sums.events,
    }


async def _add_in_sql(
    conn: AsyncConnection,
    sums: dict[tuple[int, int], UsageSums],
    orgs: dict[tuple[int, int], int],
    lines: dict[str, Decimal],
) -> None:
    """PostgreSQL adds exactly (numeric) and atomically, so two clean-ups never lose a sum."""
    for (account_seq, meter_seq), added in sorted(sums.items()):
        statement = postgresql_insert(usage_purged).values(
            account_seq=account_seq,
            meter_seq=meter_seq,
            org_seq=orgs[(account_seq, meter_seq)],
            **_values(added),
        )
        await conn.execute(
            statement.on_conflict_do_update(
                index_elements=["account_seq", "meter_seq"],
                set_={name: usage_purged.c[name] + statement.excluded[name] for name in _SUMS},
            )
        )
    for line_id, amount in sorted(lines.items()):
        line = postgresql_insert(usage_purged_lines).values(line_id=line_id, amount=amount)
        await conn.execute(
            line.on_conflict_do_update(
                index_elements=["line_id"],
                set_={"amount": usage_purged_lines.c.amount + line.excluded.amount},
            )
        )


async def _add_here(
    conn: AsyncConnection,
    sums: dict[tuple[int, int], UsageSums],
    orgs: dict[tuple[int, int], int],
    lines: dict[str, Decimal],
) -> None:
    """SQLite keeps sums as decimal text: read, add in Python, write (one writer at a time)."""
    for key, added in sorted(sums.items()):
        condition = and_(usage_purged.c.account_seq == key[0], usage_purged.c.meter_seq == key[1])
        row = (await conn.execute(select(usage_purged).where(condition))).first()
        if row is None:
            await conn.execute(
                usage_purged.insert().values(
                    account_seq=key[0], meter_seq=key[1], org_seq=orgs[key], **_values(added)
                )
            )
            continue
        before = UsageSums(*(getattr(row, name) for name in _SUMS))
        await conn.execute(update(usage_purged).where(condition).values(_values(before + added)))
    if not lines:
        return
    kept = {
        row.line_id: row.amount
        for row in await conn.execute(
            select(usage_purged_lines).where(
                tuple_(usage_purged_lines.c.line_id).in_([(line_id,) for line_id in lines])
            )
        )
    }
    for line_id, amount in sorted(lines.items()):
        if line_id in kept:
            await conn.execute(
                update(usage_purged_lines)
                .where(usage_purged_lines.c.line_id == line_id)
                .values(amount=add(kept[line_id], amount))
            )
        else:
            await conn.execute(usage_purged_lines.insert().values(line_id=line_id, amount=amount))
