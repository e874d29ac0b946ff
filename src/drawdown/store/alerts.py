"""Balance alert thresholds and what has fired, and usage.uncovered's marks: read for the write
stores' loads (SQLAlchemy: the SQLite store; PostgreSQL reads them in its load statement) and
for the balance alerts API, on both engines."""

from collections.abc import Iterable
from datetime import date, datetime, timedelta
from decimal import Decimal
from typing import Any

from sqlalchemy import and_, exists, or_, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from drawdown.ledger.alerts import AccountAlerts, AlertKind
from drawdown.ledger.credit import CreditStatus
from drawdown.ledger.records import CreditRecord
from drawdown.ledger.uncovered import UncoveredMark
from drawdown.store.tables import (
    account_alerts,
    alert_marks,
    credits,
    expiring_soon_sent,
    organization_alerts,
    uncovered_marks,
)


def thresholds(stored: Any) -> tuple[Decimal, ...] | None:
    """A stored list (JSON array of exact decimal text), highest first; None stays None."""
    if stored is None:
        return None
    return tuple(sorted((Decimal(str(value)) for value in stored), reverse=True))


def alerts_of(
    own: tuple[Any, Any] | None,
    organization: tuple[Any, Any] | None,
    fired: Iterable[tuple[str, Decimal]],
) -> AccountAlerts:
    """An account's alerts in force: its own lists where set, else its organization's."""
    own_balance, own_wallet = own or (None, None)
    org_balance, org_wallet = organization or ([], [])
    balance = thresholds(own_balance)
    wallet = thresholds(own_wallet)
    return AccountAlerts(
        balance if balance is not None else thresholds(org_balance) or (),
        wallet if wallet is not None else thresholds(org_wallet) or (),
        frozenset((AlertKind(kind), Decimal(threshold)) for kind, threshold in fired),
    )


async def of_accounts(conn: AsyncConnection, accounts: dict[int, int]) -> dict[int, AccountAlerts]:
    """The alerts of these accounts (seq -> org_seq), for those that have any."""
    if not accounts:
        return {}
    seqs = list(accounts)
    own = {
        row.account_seq: (row.thresholds, row.wallet_thresholds)
        for row in await conn.execute(
            select(account_alerts).where(account_alerts.c.account_seq.in_(seqs))
        )
    }
    orgs = {
        row.org_seq: (row.thresholds, row.wallet_thresholds)
        for row in await conn.execute(
            select(organization_alerts).where(
                organization_alerts.c.org_seq.in_(set(accounts.values()))
            )
        )
    }
    fired: dict[int, list[tuple[str, Decimal]]] = {}
    for row in await conn.execute(select(alert_marks).where(alert_marks.c.account_seq.in_(seqs))):
        fired.setdefault(row.account_seq, []).append((row.kind, row.threshold))
    found = {}
    for seq, org_seq in accounts.items():
        if seq in own or org_seq in orgs or seq in fired:
            found[seq] = alerts_of(own.get(seq), orgs.get(org_seq), fired.get(seq, []))
    return found


async def uncovered_of(conn: AsyncConnection, seqs: Iterable[int]) -> dict[int, UncoveredMark]:
    wanted = list(seqs)
    if not wanted:
        return {}
    rows = await conn.execute(
        select(uncovered_marks).where(uncovered_marks.c.account_seq.in_(wanted))
    )
    return {
        row.account_seq: UncoveredMark(row.last_sent_at, row.unreported, row.unreported_since)
        for row in rows
    }


async def expiring_soon_days(conn: AsyncConnection) -> dict[int, int]:
    """Organizations whose `expiringSoonDays` is set: org_seq -> days."""
    rows = await conn.execute(
        select(organization_alerts.c.org_seq, organization_alerts.c.expiring_soon_days)
    )
    return {row.org_seq: row.expiring_soon_days for row in rows}


async def credits_expiring(
    conn: AsyncConnection, today: date, days: dict[int, int], default_days: int, limit: int
) -> list[CreditRecord]:
    """ACTIVE credits whose last day is within their organization's days from `today` (none
    of them yet reported), soonest first; `days` holds the organizations with their own."""
    window = [
        and_(
            credits.c.org_seq == org_seq,
            credits.c.effective_until <= today + timedelta(days=org_days),
        )
        for org_seq, org_days in days.items()
    ]
    default = credits.c.effective_until <= today + timedelta(days=default_days)
    if days:
        default = and_(default, credits.c.org_seq.not_in(list(days)))
    query = (
        select(credits)
        .where(
            credits.c.status == CreditStatus.ACTIVE.value,
            credits.c.effective_until.is_not(None),
            credits.c.effective_until >= today,
            or_(default, *window),
            ~exists().where(expiring_soon_sent.c.credit_seq == credits.c.seq),
        )
        .order_by(credits.c.effective_until, credits.c.seq)
        .limit(limit)
    )
    return [CreditRecord.from_row(row) for row in await conn.execute(query)]


async def mark_expiring_soon(conn: AsyncConnection, credit_seqs: list[int], now: datetime) -> None:
    """Once per credit: a second sweep marking the same credit fails on the key and runs again."""
    if credit_seqs:
        await conn.execute(
            expiring_soon_sent.insert(),
            [{"credit_seq": seq, "sent_at": now} for seq in credit_seqs],
        )


async def organization_settings(conn: AsyncConnection, org_seq: int) -> Any:
    query = select(organization_alerts).where(organization_alerts.c.org_seq == org_seq)
    return (await conn.execute(query)).first()


async def save_organization_settings(
    conn: AsyncConnection, org_seq: int, values: dict[str, Any]
) -> None:
    if await organization_settings(conn, org_seq) is None:
        await conn.execute(organization_alerts.insert().values(org_seq=org_seq, **values))
    else:
        await conn.execute(
            update(organization_alerts)
            .where(organization_alerts.c.org_seq == org_seq)
            .values(**values)
        )


async def account_settings(conn: AsyncConnection, account_seq: int) -> Any:
    query = select(account_alerts).where(account_alerts.c.account_seq == account_seq)
    return (await conn.execute(query)).first()


async def save_account_settings(
    conn: AsyncConnection, account_seq: int, org_seq: int, values: dict[str, Any]
) -> None:
    if await account_settings(conn, account_seq) is None:
        await conn.execute(
            account_alerts.insert().values(account_seq=account_seq, org_seq=org_seq, **values)
        )
    else:
        await conn.execute(
            update(account_alerts)
            .where(account_alerts.c.account_seq == account_seq)
            .values(**values)
        )


async def fired(conn: AsyncConnection, account_seq: int, kind: AlertKind) -> list[Decimal]:
    query = select(alert_marks.c.threshold).where(
        alert_marks.c.account_seq == account_seq, alert_marks.c.kind == kind.value
    )
    return sorted((await conn.execute(query)).scalars(), reverse=True)
