"""Queries for wallets and their entries (docs/wallet.md). Writes go through the write stores'
save, like every money write; these are the reads."""

from collections.abc import Sequence
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncConnection

from drawdown.ledger.wallet import (
    EntryStatus,
    EntryType,
    WalletEntryRecord,
    WalletRecord,
    WalletStatus,
)
from drawdown.store.tables import wallet_entries, wallets

# what the entries list shows: released holds and their give-backs stay in the ledger, unlisted
_LISTED_TYPES = (EntryType.CREDITED.value, EntryType.DEBITED.value)
_LISTED_STATUSES = (EntryStatus.COMPLETED.value, EntryStatus.ON_HOLD.value)


def wallet_of(row: Any) -> WalletRecord:
    return WalletRecord(
        seq=row.seq,
        org_seq=row.org_seq,
        account_seq=row.account_seq,
        id=row.id,
        account_id=row.account_id,
        customer_id=row.customer_id,
        currency=row.currency,
        status=WalletStatus(row.status),
        effective_from=row.effective_from,
        topped_up=row.topped_up,
        consumed=row.consumed,
        held=row.held,
        entries=row.entries,
        created_at=row.created_at,
        updated_at=row.updated_at,
    )


def entry_of(row: Any, wallet: WalletRecord) -> WalletEntryRecord:
    return WalletEntryRecord(
        id=row.id,
        wallet_id=wallet.id,
        wallet_seq=wallet.seq,
        account_seq=wallet.account_seq,
        number=row.number,
        entry_type=EntryType(row.entry_type),
        status=EntryStatus(row.status),
        amount=row.amount,
        closing_balance=row.closing_balance,
        created_at=row.created_at,
        updated_at=row.updated_at,
        entity_id=row.entity_id,
        invoice_id=row.invoice_id,
    )


async def of_accounts(
    conn: AsyncConnection, account_seqs: Sequence[int]
) -> dict[int, WalletRecord]:
    """The wallets of these accounts, by account seq (accounts without one are left out)."""
    found: dict[int, WalletRecord] = {}
    for start in range(0, len(account_seqs), 400):
        chunk = list(account_seqs[start : start + 400])
        rows = await conn.execute(select(wallets).where(wallets.c.account_seq.in_(chunk)))
        found.update({row.account_seq: wallet_of(row) for row in rows})
    return found


async def find_wallet(conn: AsyncConnection, account_seq: int) -> WalletRecord | None:
    row = (await conn.execute(select(wallets).where(wallets.c.account_seq == account_seq))).first()
    return wallet_of(row) if row else None


async def page_of_entries(
    conn: AsyncConnection, wallet: WalletRecord, after_number: int, limit: int
) -> list[WalletEntryRecord]:
    """Listed entries (not released holds nor their give-backs), in entry order."""
    query = (
        select(wallet_entries)
        .where(
            wallet_entries.c.wallet_seq == wallet.seq,
            wallet_entries.c.number > after_number,
            wallet_entries.c.entry_type.in_(_LISTED_TYPES),
            wallet_entries.c.status.in_(_LISTED_STATUSES),
        )
        .order_by(wallet_entries.c.number)
        .limit(limit)
    )
    return [entry_of(row, wallet) for row in await conn.execute(query)]
