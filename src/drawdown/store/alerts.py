"""Balance alert thresholds and what has fired, and usage.uncovered's marks: read for the write
stores' loads (SQLAlchemy: the SQLite store; PostgreSQL reads them in its load statement) and
for the balance alerts API, on both engines."""

from collections.abc import Iterable
from decimal import Decimal
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncConnection

from drawdown.ledger.alerts import AccountAlerts, AlertKind
from drawdown.ledger.uncovered import UncoveredMark
from drawdown.store.tables import (
    account_alerts,
    alert_marks,
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
