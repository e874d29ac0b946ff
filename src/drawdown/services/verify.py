"""`drawdown verify`: recompute every credit from its ledger lines and every account's balance
from its credits, and report each place where what is stored disagrees."""

from collections import defaultdict
from dataclasses import asdict
from datetime import date
from decimal import Decimal

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncConnection

from drawdown.ledger.application import ApplicationStatus
from drawdown.ledger.balance import NO_TOTALS, BalanceTotals, contribution
from drawdown.ledger.credit import CreditStatus, TransactionType
from drawdown.ledger.money import ZERO, add, format_amount
from drawdown.store.records import AccountRecord, CreditRecord
from drawdown.store.tables import accounts, credit_applications, credit_transactions, credits


async def verify(conn: AsyncConnection, today: date, org_seq: int | None = None) -> list[str]:
    """Every mismatch found, as a sentence; an empty list means the books are sound.

    With `org_seq`, only that organization's books are checked.
    """
    problems: list[str] = []
    line_totals: dict[int, dict[TransactionType, Decimal]] = defaultdict(dict)
    lines_query = select(credit_transactions)
    credits_query = select(credits).order_by(credits.c.seq)
    accounts_query = select(accounts).order_by(accounts.c.seq)
    held_query = select(credit_applications.c.line_items).where(
        credit_applications.c.status == ApplicationStatus.HELD.value
    )
    if org_seq is not None:
        lines_query = lines_query.join(
            credits, credits.c.seq == credit_transactions.c.credit_seq
        ).where(credits.c.org_seq == org_seq)
        credits_query = credits_query.where(credits.c.org_seq == org_seq)
        accounts_query = accounts_query.where(accounts.c.org_seq == org_seq)
        held_query = held_query.where(credit_applications.c.org_seq == org_seq)
    for row in await conn.execute(lines_query):
        of_credit = line_totals[row.credit_seq]
        kind = TransactionType(row.transaction_type)
        of_credit[kind] = add(of_credit.get(kind, ZERO), row.amount)

    held: dict[str, Decimal] = {}
    for (line_items,) in await conn.execute(held_query):
        for item in line_items:
            for allocation in item["allocations"]:
                credit_id = allocation["creditId"]
                held[credit_id] = add(held.get(credit_id, ZERO), Decimal(allocation["amount"]))

    by_account: dict[int, list[CreditRecord]] = defaultdict(list)
    for row in await conn.execute(credits_query):
        credit = CreditRecord.from_row(row)
        by_account[credit.account_seq].append(credit)
        problems += _check_credit(credit, line_totals[credit.seq], held.get(credit.id, ZERO))

    for row in await conn.execute(accounts_query):
        problems += _check_account(AccountRecord.from_row(row), by_account[row.seq], today)
    return problems


def _check_credit(
    credit: CreditRecord, lines: dict[TransactionType, Decimal], held: Decimal
) -> list[str]:
    amounts = credit.amounts
    name = f"credit {credit.id}"
    expected = {
        TransactionType.CREDITED: ("creditAmount", amounts.credit_amount),
        TransactionType.DEBITED: ("consumedAmount", amounts.consumed),
        TransactionType.EXPIRED: ("expired amount", amounts.expired),
        TransactionType.VOIDED: ("voided amount", amounts.voided),
    }
    problems = [
        f"{name}: {kind.value} lines total {format_amount(lines.get(kind, ZERO))} "
        f"but its {label} is {format_amount(stored)}"
        for kind, (label, stored) in expected.items()
        if lines.get(kind, ZERO) != stored
    ]
    if held != amounts.held:
        problems.append(
            f"{name}: held applications hold {format_amount(held)} "
            f"but its holdAmount is {format_amount(amounts.held)}"
        )
    if amounts.available < 0:
        problems.append(f"{name}: available is negative ({format_amount(amounts.available)})")
    consumed_all = amounts.consumed == amounts.credit_amount
    if credit.status is CreditStatus.CONSUMED and not consumed_all:
        problems.append(f"{name}: CONSUMED but only part of it is consumed")
    if credit.status is CreditStatus.ACTIVE and consumed_all:
        problems.append(f"{name}: ACTIVE but fully consumed")
    if credit.status is not CreditStatus.ACTIVE and amounts.available != 0:
        problems.append(
            f"{name}: {credit.status.value} but {format_amount(amounts.available)} is available"
        )
    return problems


def _check_account(account: AccountRecord, owned: list[CreditRecord], today: date) -> list[str]:
    # Kept totals are exact for every day from `as_of` (the day they were counted for) through
    # `valid_through`; an account is checked on the day of that span nearest to `today`.
    through = account.valid_through
    day = max(today, account.as_of)
    if through is not None and day > through:
        day = through
    expected = NO_TOTALS
    for credit in owned:
        expected = expected + contribution(
            credit.status, credit.amounts, credit.effective_from, credit.effective_until, day
        )
    if expected == account.totals:
        return []
    return [
        f"account {account.id}: kept balance {_show(account.totals)} "
        f"but its credits add up to {_show(expected)} on {day.isoformat()}"
    ]


def _show(totals: BalanceTotals) -> str:
    return "{" + ", ".join(f"{k}={format_amount(v)}" for k, v in asdict(totals).items()) + "}"
