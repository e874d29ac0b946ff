"""`drawdown verify` for usage (docs/usage.md, "What drawdown verify checks"): every usage line
equals what the events (and the clean-up's kept sums) say they drew from it, every event's cost
is its pricing and is paid or uncovered to the last digit, and the running totals per account
and meter equal the events' sums."""

from collections import defaultdict
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncConnection

from drawdown.ledger.credit import TransactionType
from drawdown.ledger.money import ZERO, add, format_amount
from drawdown.ledger.usage import CostOutOfRange, EventStatus, price
from drawdown.ledger.usage_records import Charge, UsageSums
from drawdown.store.tables import (
    accounts,
    credit_transactions,
    credits,
    usage_events,
    usage_meters,
    usage_purged,
    usage_purged_lines,
    usage_totals,
    wallet_entries,
    wallets,
)


@dataclass(frozen=True)
class UsageLine:
    """A DEBITED line without an invoice: usage's (a credit's line, or a wallet's entry)."""

    credit_id: str  # the credit, or the wallet
    entity_id: str | None
    amount: Decimal


async def usage_lines(conn: AsyncConnection, org_seq: int | None) -> dict[str, UsageLine]:
    query = (
        select(
            credit_transactions.c.id,
            credit_transactions.c.entity_id,
            credit_transactions.c.amount,
            credits.c.id.label("credit_id"),
        )
        .join(credits, credits.c.seq == credit_transactions.c.credit_seq)
        .where(
            credit_transactions.c.transaction_type == TransactionType.DEBITED.value,
            credit_transactions.c.invoice_id.is_(None),
        )
    )
    if org_seq is not None:
        query = query.where(credits.c.org_seq == org_seq)
    return {
        row.id: UsageLine(row.credit_id, row.entity_id, row.amount)
        for row in await conn.execute(query)
    }


async def usage_wallet_entries(conn: AsyncConnection, org_seq: int | None) -> dict[str, UsageLine]:
    """The wallets' DEBITED entries without an invoice (usage's), as lines of the wallet."""
    query = (
        select(
            wallet_entries.c.id,
            wallet_entries.c.entity_id,
            wallet_entries.c.amount,
            wallets.c.id.label("wallet_id"),
        )
        .join(wallets, wallets.c.seq == wallet_entries.c.wallet_seq)
        .where(
            wallet_entries.c.entry_type == "DEBITED",
            wallet_entries.c.invoice_id.is_(None),
        )
    )
    if org_seq is not None:
        query = query.where(wallets.c.org_seq == org_seq)
    return {
        row.id: UsageLine(row.wallet_id, row.entity_id, row.amount)
        for row in await conn.execute(query)
    }


async def check_usage(conn: AsyncConnection, org_seq: int | None) -> list[str]:
    problems: list[str] = []
    lines = await usage_lines(conn, org_seq)
    # a wallet's usage entries are checked like credits' usage lines, the wallet in the
    # credit's place (entry ids and line ids never meet: they have their own prefixes)
    wallet_lines = await usage_wallet_entries(conn, org_seq)
    lines.update(wallet_lines)
    drawn: dict[str, Decimal] = defaultdict(lambda: ZERO)
    sums: dict[tuple[int, int], UsageSums] = defaultdict(UsageSums)

    events_query = select(
        usage_events.c.id,
        usage_events.c.account_seq,
        usage_events.c.org_seq,
        accounts.c.org_seq.label("account_org_seq"),
        usage_events.c.status,
        usage_events.c.results,
    ).select_from(usage_events.outerjoin(accounts, accounts.c.seq == usage_events.c.account_seq))
    if org_seq is not None:
        events_query = events_query.where(usage_events.c.org_seq == org_seq)
    for row in await conn.execute(events_query):
        problems += _check_event(row, lines, drawn, sums)

    purged_lines = select(usage_purged_lines)
    for row in await conn.execute(purged_lines):
        if row.line_id in lines:
            drawn[row.line_id] = add(drawn[row.line_id], row.amount)

    for line_id, line in sorted(lines.items()):
        if drawn[line_id] != line.amount:
            owner = "wallet" if line_id in wallet_lines else "credit"
            problems.append(
                f"usage line {line_id} on {owner} {line.credit_id}: amount "
                f"{format_amount(line.amount)} but its events drew "
                f"{format_amount(drawn[line_id])}"
            )

    kept = await _sums_of(conn, usage_totals, org_seq)
    purged = await _sums_of(conn, usage_purged, org_seq)
    names = await _meter_ids(conn, org_seq)
    for key in sorted(set(kept) | set(sums) | set(purged)):
        expected = sums.get(key, UsageSums()) + purged.get(key, UsageSums())
        found = kept.get(key, UsageSums())
        if found != expected:
            account_seq, meter_seq = key
            problems.append(
                f"usage totals of account {account_seq} on meter "
                f"{names.get(meter_seq, meter_seq)}: kept {_show(found)} but its events add up "
                f"to {_show(expected)}"
            )
    return problems


def _check_event(
    row: Any,
    lines: dict[str, UsageLine],
    drawn: dict[str, Decimal],
    sums: dict[tuple[int, int], UsageSums],
) -> list[str]:
    name = f"usage event '{row.id}'"
    status = EventStatus(row.status)
    charges = [Charge.from_stored(stored) for stored in row.results or []]
    problems = []
    # no foreign key holds these (migration 0009): the ingest statement takes both from the
    # account it joins, and this is where a row that does not match them is found
    if row.account_org_seq is None:
        problems.append(f"{name}: its account {row.account_seq} does not exist")
    elif row.account_org_seq != row.org_seq:
        problems.append(f"{name}: its account {row.account_seq} is another organization's")
    if status is EventStatus.PENDING and row.results is not None:
        problems.append(f"{name}: PENDING but it records results")
    if status is EventStatus.UNMETERED and charges:
        problems.append(f"{name}: UNMETERED but priced on meters")
    if status is EventStatus.APPLIED and not charges:
        problems.append(f"{name}: APPLIED but priced on no meter")
    for charge in charges:
        where = f"{name} on meter {charge.meter_id}"
        paid = charge.paid_by_credits
        if add(add(paid, charge.paid_by_wallet), charge.uncovered) != charge.cost:
            problems.append(
                f"{where}: cost {format_amount(charge.cost)} but credits paid "
                f"{format_amount(paid)}, the wallet {format_amount(charge.paid_by_wallet)} and "
                f"{format_amount(charge.uncovered)} is uncovered"
            )
        shares = [a.amount for a in charge.allocations]
        if charge.wallet is not None:
            shares.append(charge.wallet.amount)
        if charge.uncovered < 0 or any(amount <= 0 for amount in shares):
            problems.append(f"{where}: an amount paid or uncovered is not positive")
        try:
            priced = price(charge.quantity, charge.rate)
        except CostOutOfRange:
            priced = None
        if priced is None or (priced.cost, priced.exact) != (charge.cost, charge.exact_cost):
            problems.append(
                f"{where}: cost {format_amount(charge.cost)} is not quantity "
                f"{format_amount(charge.quantity)} at {format_amount(charge.rate.credits)} per "
                f"{format_amount(charge.rate.per_quantity)}"
            )
        for allocation in charge.allocations:
            line = lines.get(allocation.line_id)
            if line is None or line.credit_id != allocation.credit_id:
                problems.append(
                    f"{where}: credit {allocation.credit_id} paid on line {allocation.line_id}, "
                    "which is not a usage line of that credit"
                )
            elif line.entity_id != charge.meter_id:
                problems.append(
                    f"{where}: paid on line {allocation.line_id} of entity {line.entity_id}"
                )
            drawn[allocation.line_id] = add(drawn[allocation.line_id], allocation.amount)
        if charge.wallet is not None:
            paid_by = charge.wallet
            entry = lines.get(paid_by.entry_id)
            if entry is None or entry.credit_id != paid_by.wallet_id:
                problems.append(
                    f"{where}: wallet {paid_by.wallet_id} paid on entry {paid_by.entry_id}, "
                    "which is not a usage entry of that wallet"
                )
            elif entry.entity_id != charge.meter_id:
                problems.append(
                    f"{where}: paid on wallet entry {paid_by.entry_id} of entity {entry.entity_id}"
                )
            drawn[paid_by.entry_id] = add(drawn[paid_by.entry_id], paid_by.amount)
        key = (row.account_seq, charge.meter_seq)
        sums[key] = sums[key] + UsageSums.of(charge)
    return problems


async def _sums_of(
    conn: AsyncConnection, table: Any, org_seq: int | None
) -> dict[tuple[int, int], UsageSums]:
    query = select(table)
    if org_seq is not None:
        query = query.where(table.c.org_seq == org_seq)
    return {
        (row.account_seq, row.meter_seq): UsageSums(
            row.quantity,
            row.cost,
            row.paid_by_credits,
            row.paid_by_wallet,
            row.uncovered,
            row.events,
        )
        for row in await conn.execute(query)
    }


async def _meter_ids(conn: AsyncConnection, org_seq: int | None) -> dict[int, str]:
    query = select(usage_meters.c.seq, usage_meters.c.id)
    if org_seq is not None:
        query = query.where(usage_meters.c.org_seq == org_seq)
    return {row.seq: row.id for row in await conn.execute(query)}


def _show(sums: UsageSums) -> str:
    return (
        f"{{quantity={format_amount(sums.quantity)}, cost={format_amount(sums.cost)}, "
        f"paidByCredits={format_amount(sums.paid_by_credits)}, "
        f"paidByWallet={format_amount(sums.paid_by_wallet)}, "
        f"uncovered={format_amount(sums.uncovered)}, events={sums.events}}}"
    )
