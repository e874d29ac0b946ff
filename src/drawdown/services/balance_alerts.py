"""Balance alert thresholds (docs/webhooks.md, "Balance alerts"): an organization's defaults
(with its `expiringSoonDays`) and an account's own lists. Thresholds are kept as exact decimal
text; what they mean is judged by `ledger/alerts.py` in every write."""

from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any

from sqlalchemy.ext.asyncio import AsyncConnection

from drawdown.errors import BadRequest, NotFound
from drawdown.ledger.alerts import AlertKind
from drawdown.ledger.expiring import DEFAULT_DAYS
from drawdown.ledger.money import format_amount
from drawdown.store import alerts as store
from drawdown.store import ledger
from drawdown.store.database import Database


@dataclass(frozen=True)
class OrganizationAlerts:
    thresholds: tuple[Decimal, ...]
    wallet_thresholds: tuple[Decimal, ...]
    expiring_soon_days: int


@dataclass(frozen=True)
class AccountAlerts:
    account_id: str
    thresholds: tuple[Decimal, ...]
    wallet_thresholds: tuple[Decimal, ...]
    own_thresholds: bool
    own_wallet_thresholds: bool
    fired: list[Decimal]
    wallet_fired: list[Decimal]


def stored(values: list[Decimal] | None, field: str) -> list[str] | None:
    """A list as kept: exact text, none twice."""
    if values is None:
        return None
    texts = [format_amount(value) for value in values]
    if len(set(texts)) != len(texts):
        raise BadRequest(f"{field} must not name a threshold twice")
    return texts


async def _organization(conn: AsyncConnection, org_seq: int) -> OrganizationAlerts:
    row = await store.organization_settings(conn, org_seq)
    if row is None:
        return OrganizationAlerts((), (), DEFAULT_DAYS)
    return OrganizationAlerts(
        store.thresholds(row.thresholds) or (),
        store.thresholds(row.wallet_thresholds) or (),
        row.expiring_soon_days,
    )


async def get_organization(db: Database, org_seq: int) -> OrganizationAlerts:
    async with db.read() as conn:
        return await _organization(conn, org_seq)


async def put_organization(
    db: Database, org_seq: int, body: dict[str, Any], now: datetime
) -> OrganizationAlerts:
    """A list omitted keeps what it was; `expiringSoonDays` omitted keeps it too."""

    async def work(conn: AsyncConnection) -> OrganizationAlerts:
        current = await _organization(conn, org_seq)
        thresholds = stored(body.get("thresholds"), "thresholds")
        wallet = stored(body.get("walletThresholds"), "walletThresholds")
        values = {
            "thresholds": thresholds
            if thresholds is not None
            else stored(list(current.thresholds), "thresholds"),
            "wallet_thresholds": wallet
            if wallet is not None
            else stored(list(current.wallet_thresholds), "walletThresholds"),
            "expiring_soon_days": body.get("expiringSoonDays") or current.expiring_soon_days,
            "updated_at": now,
        }
        await store.save_organization_settings(conn, org_seq, values)
        return await _organization(conn, org_seq)

    return await db.transact(work)


async def _account(conn: AsyncConnection, org_seq: int, account_id: str) -> AccountAlerts:
    account = await ledger.find_account(conn, org_seq, account_id)
    if account is None:
        raise NotFound(f"account '{account_id}' was not found")
    organization = await _organization(conn, org_seq)
    own = await store.account_settings(conn, account.seq)
    own_balance = store.thresholds(own.thresholds) if own is not None else None
    own_wallet = store.thresholds(own.wallet_thresholds) if own is not None else None
    return AccountAlerts(
        account.id,
        own_balance if own_balance is not None else organization.thresholds,
        own_wallet if own_wallet is not None else organization.wallet_thresholds,
        own_balance is not None,
        own_wallet is not None,
        await store.fired(conn, account.seq, AlertKind.BALANCE),
        await store.fired(conn, account.seq, AlertKind.WALLET),
    )


async def get_account(db: Database, org_seq: int, account_id: str) -> AccountAlerts:
    async with db.read() as conn:
        return await _account(conn, org_seq, account_id)


async def put_account(
    db: Database, org_seq: int, account_id: str, body: dict[str, Any], now: datetime
) -> AccountAlerts:
    """The account's own lists, replaced; one null or omitted falls back to the organization's."""

    async def work(conn: AsyncConnection) -> AccountAlerts:
        account = await ledger.find_account(conn, org_seq, account_id)
        if account is None:
            raise NotFound(f"account '{account_id}' was not found")
        values = {
            "thresholds": stored(body.get("thresholds"), "thresholds"),
            "wallet_thresholds": stored(body.get("walletThresholds"), "walletThresholds"),
            "updated_at": now,
        }
        await store.save_account_settings(conn, account.seq, org_seq, values)
        return await _account(conn, org_seq, account_id)

    return await db.transact(work)
