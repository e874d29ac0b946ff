"""Reading an account's wallet and its entries (docs/wallet.md). Top-ups and status changes are
money writes: see `services/writes.py` and `ledger/wallet_writes.py`."""

from dataclasses import dataclass

from sqlalchemy.ext.asyncio import AsyncConnection

from drawdown.errors import NotFound
from drawdown.ledger.wallet import WalletEntryRecord, WalletRecord
from drawdown.ledger.wallet_writes import no_wallet
from drawdown.services.paging import decode_token, encode_token
from drawdown.store import ledger, wallets


@dataclass(frozen=True)
class EntryPage:
    entries: list[WalletEntryRecord]
    next_token: str | None


async def get_wallet(conn: AsyncConnection, org_seq: int, account_id: str) -> WalletRecord:
    account = await ledger.find_account(conn, org_seq, account_id)
    if account is None:
        raise NotFound(f"account '{account_id}' was not found")
    wallet = await wallets.find_wallet(conn, account.seq)
    if wallet is None:
        raise NotFound(no_wallet(account_id))
    return wallet


async def entries_page(
    conn: AsyncConnection, org_seq: int, account_id: str, *, page_size: int, next_token: str | None
) -> EntryPage:
    """The listed entries in entry order, a page at a time; the token is the last number seen."""
    after = decode_token("wallet_entries", next_token)
    wallet = await get_wallet(conn, org_seq, account_id)
    found = await wallets.page_of_entries(conn, wallet, after, page_size + 1)
    token = None
    if len(found) > page_size:
        token = encode_token("wallet_entries", found[page_size - 1].number)
    return EntryPage(found[:page_size], token)
