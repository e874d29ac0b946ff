"""`drawdown verify` for wallets (docs/wallet.md): every wallet's entries, in order, explain its
closing balances and its totals, and every application's wallet share is the entry that holds or
debits it. Usage's wallet entries are checked with the events (services/verify_usage.py)."""

from collections import defaultdict
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncConnection

from drawdown.ledger.application import ApplicationStatus
from drawdown.ledger.money import ZERO, add, format_amount, sub
from drawdown.ledger.wallet import EntryStatus, EntryType
from drawdown.store.tables import accounts, wallet_entries, wallets

# what each application status means for the entry its wallet share names
_ENTRY_STATUS_OF = {
    ApplicationStatus.HELD: EntryStatus.ON_HOLD,
    ApplicationStatus.DEBITED: EntryStatus.COMPLETED,
    ApplicationStatus.RELEASED: EntryStatus.RELEASED,
}


@dataclass(frozen=True)
class ApplicationShare:
    """An application's wallet share: the entry it names, its wallet, and the sum of its
    lines' shares."""

    invoice_id: str
    account_seq: int
    status: ApplicationStatus
    wallet_id: str
    amount: Decimal


def application_shares(row: Any) -> dict[str, ApplicationShare]:
    """The wallet share of a stored application, by the entry it names (at most one)."""
    found: dict[str, ApplicationShare] = {}
    for item in row.line_items:
        for share in item["allocations"]:
            if "walletId" not in share:
                continue
            entry_id = share["entryId"]
            earlier = found.get(entry_id)
            amount = Decimal(share["amount"])
            found[entry_id] = ApplicationShare(
                row.invoice_id,
                row.account_seq,
                ApplicationStatus(row.status),
                share["walletId"],
                add(earlier.amount, amount) if earlier else amount,
            )
    return found


async def check_wallets(
    conn: AsyncConnection, org_seq: int | None, shares: dict[str, ApplicationShare]
) -> list[str]:
    wallet_query = select(wallets).order_by(wallets.c.seq)
    entry_query = (
        select(wallet_entries)
        .join(wallets, wallets.c.seq == wallet_entries.c.wallet_seq)
        .order_by(wallet_entries.c.wallet_seq, wallet_entries.c.number)
    )
    if org_seq is not None:
        wallet_query = wallet_query.where(wallets.c.org_seq == org_seq)
        entry_query = entry_query.where(wallets.c.org_seq == org_seq)
    rows_of: dict[int, list[Any]] = defaultdict(list)
    for row in await conn.execute(entry_query):
        rows_of[row.wallet_seq].append(row)
    problems: list[str] = []
    by_id: dict[str, tuple[Any, Any]] = {}
    owners = await _owners(conn, org_seq)
    for wallet in await conn.execute(wallet_query):
        rows = rows_of.get(wallet.seq, [])
        problems += _check_wallet(wallet, rows, owners.get(wallet.account_seq))
        by_id.update({row.id: (row, wallet) for row in rows})
    problems += _check_shares(by_id, shares)
    return problems


async def _owners(conn: AsyncConnection, org_seq: int | None) -> dict[int, tuple[int, str]]:
    query = select(accounts.c.seq, accounts.c.org_seq, accounts.c.id)
    if org_seq is not None:
        query = query.where(accounts.c.org_seq == org_seq)
    return {row.seq: (row.org_seq, row.id) for row in await conn.execute(query)}


def _check_wallet(wallet: Any, rows: list[Any], owner: tuple[int, str] | None) -> list[str]:
    name = f"wallet {wallet.id}"
    problems = []
    if owner != (wallet.org_seq, wallet.account_id):
        problems.append(f"{name}: names account {wallet.account_id}, which does not own it")
    numbers = [row.number for row in rows]
    if numbers != list(range(1, len(rows) + 1)) or wallet.entries != len(rows):
        problems.append(
            f"{name}: entries are numbered {_numbers(numbers)} but it counts {wallet.entries}"
        )
    running = credited = consumed = held = released = given_back = ZERO
    for row in rows:
        kind, status = EntryType(row.entry_type), EntryStatus(row.status)
        if row.amount <= 0:
            problems.append(f"{name}: entry {row.id} has amount {format_amount(row.amount)}")
        if kind is EntryType.DEBITED:
            running = sub(running, row.amount)
            if status is EntryStatus.ON_HOLD:
                held = add(held, row.amount)
            elif status is EntryStatus.COMPLETED:
                consumed = add(consumed, row.amount)
            else:
                released = add(released, row.amount)
        else:
            running = add(running, row.amount)
            if kind is EntryType.CREDITED:
                credited = add(credited, row.amount)
            else:
                given_back = add(given_back, row.amount)
        if row.closing_balance != running:
            problems.append(
                f"{name}: entry {row.number} ({row.id}) closes at "
                f"{format_amount(row.closing_balance)} but the entries before it and it come to "
                f"{format_amount(running)}"
            )
    kept = (wallet.topped_up, wallet.consumed, wallet.held)
    if kept != (credited, consumed, held):
        problems.append(
            f"{name}: toppedUp {format_amount(wallet.topped_up)}, consumed "
            f"{format_amount(wallet.consumed)}, held {format_amount(wallet.held)} but its "
            f"entries total {format_amount(credited)} CREDITED, {format_amount(consumed)} "
            f"DEBITED COMPLETED, {format_amount(held)} DEBITED ON_HOLD"
        )
    if released != given_back:
        problems.append(
            f"{name}: released holds total {format_amount(released)} but the amounts given "
            f"back total {format_amount(given_back)}"
        )
    balance = sub(wallet.topped_up, add(wallet.consumed, wallet.held))
    if balance < 0 or wallet.held < 0 or wallet.consumed < 0:
        problems.append(f"{name}: a total is negative (balance {format_amount(balance)})")
    elif balance != running:
        problems.append(
            f"{name}: balance {format_amount(balance)} but its entries come to "
            f"{format_amount(running)}"
        )
    return problems


def _check_shares(
    entries: dict[str, tuple[Any, Any]], shares: dict[str, ApplicationShare]
) -> list[str]:
    """Each application's wallet share is its entry, and each invoice entry is a share."""
    problems = []
    for entry_id, share in sorted(shares.items()):
        name = f"application for invoice '{share.invoice_id}'"
        found = entries.get(entry_id)
        if found is None:
            problems.append(f"{name}: its wallet share names entry {entry_id}, which is not there")
            continue
        row, wallet = found
        expected = _ENTRY_STATUS_OF[share.status]
        if (wallet.id, wallet.account_seq) != (share.wallet_id, share.account_seq):
            problems.append(f"{name}: its wallet share names another account's wallet")
        if (row.amount, row.status, row.invoice_id) != (
            share.amount,
            expected.value,
            share.invoice_id,
        ):
            problems.append(
                f"{name}: {share.status.value} with a wallet share of "
                f"{format_amount(share.amount)} but entry {entry_id} is {row.status} "
                f"{format_amount(row.amount)} for invoice '{row.invoice_id}'"
            )
    for entry_id, (row, wallet) in sorted(entries.items()):
        # a released hold may be named by none (its invoice was held again since): the release
        # row that gave it back answers for it
        standing = row.entry_type == EntryType.DEBITED.value and row.status != "RELEASED"
        if standing and row.invoice_id is not None and entry_id not in shares:
            problems.append(
                f"wallet {wallet.id}: entry {row.number} ({entry_id}) is {row.status} for "
                f"invoice '{row.invoice_id}', which no application's wallet share names"
            )
    return problems


def _numbers(numbers: list[int]) -> str:
    shown = ", ".join(str(n) for n in numbers[:10])
    return f"[{shown}{', ...' if len(numbers) > 10 else ''}]"
