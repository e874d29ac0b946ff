"""`drawdown verify`: recompute every credit from its ledger lines and every account's balance
from its credits, and report each place where what is stored disagrees; usage's lines, events
and totals are checked by services/verify_usage.py."""

from collections import defaultdict
from dataclasses import asdict
from datetime import date
from decimal import Decimal
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncConnection

from drawdown.ledger.application import ApplicationStatus
from drawdown.ledger.balance import NO_TOTALS, BalanceTotals, contribution
from drawdown.ledger.credit import CreditStatus, TransactionType, is_past_until
from drawdown.ledger.money import ZERO, add, format_amount, sub
from drawdown.ledger.records import AccountRecord, CreditRecord
from drawdown.services.verify_usage import check_usage
from drawdown.store.tables import accounts, credit_applications, credit_transactions, credits


async def verify(conn: AsyncConnection, today: date, org_seq: int | None = None) -> list[str]:
    """Every mismatch found, as a sentence; an empty list means the books are sound.

    With `org_seq`, only that organization's books are checked.
    """
    problems: list[str] = []
    credits_query = select(credits).order_by(credits.c.seq)
    accounts_query = select(accounts).order_by(accounts.c.seq)
    lines_query = select(credit_transactions, credits.c.id.label("credit_id")).join(
        credits, credits.c.seq == credit_transactions.c.credit_seq
    )
    applications_query = select(credit_applications).order_by(credit_applications.c.seq)
    if org_seq is not None:
        credits_query = credits_query.where(credits.c.org_seq == org_seq)
        accounts_query = accounts_query.where(accounts.c.org_seq == org_seq)
        lines_query = lines_query.where(credits.c.org_seq == org_seq)
        applications_query = applications_query.where(credit_applications.c.org_seq == org_seq)

    owned_credits = [CreditRecord.from_row(row) for row in await conn.execute(credits_query)]
    by_id = {credit.id: credit for credit in owned_credits}

    line_totals: dict[int, dict[TransactionType, Decimal]] = defaultdict(
        lambda: defaultdict(Decimal)
    )
    debited_lines: dict[_DebitKey, Decimal] = defaultdict(Decimal)
    for row in await conn.execute(lines_query):
        kind = TransactionType(row.transaction_type)
        totals_of = line_totals[row.credit_seq]
        totals_of[kind] = add(totals_of[kind], row.amount)
        # a DEBITED line without an invoice is usage's: services/verify_usage.py checks it
        if kind is TransactionType.DEBITED and row.invoice_id is not None:
            key = (row.credit_id, row.invoice_id, row.entity_id)
            debited_lines[key] = add(debited_lines[key], row.amount)

    held: dict[str, Decimal] = defaultdict(Decimal)
    debited_by_applications: dict[_DebitKey, Decimal] = defaultdict(Decimal)
    for row in await conn.execute(applications_query):
        problems += _check_application(row, by_id, held, debited_by_applications)
    problems += _check_debits(debited_lines, debited_by_applications)

    owning = [AccountRecord.from_row(row) for row in await conn.execute(accounts_query)]
    # A write computes as of the later of its clock's day and its account's balance day, so a
    # credit may rightly be expired on a day this process's clock has not reached yet.
    account_day = {account.seq: max(today, account.as_of) for account in owning}
    by_account: dict[int, list[CreditRecord]] = defaultdict(list)
    for credit in owned_credits:
        by_account[credit.account_seq].append(credit)
        day = account_day.get(credit.account_seq, today)
        problems += _check_credit(credit, line_totals[credit.seq], held[credit.id], day)

    for account in owning:
        problems += _check_ownership(account, by_account[account.seq])
        problems += _check_account(account, by_account[account.seq], today)
    problems += await check_usage(conn, org_seq)
    return problems


# A credit, an invoice and a line item's entity: DEBITED lines and debited allocations meet here.
_DebitKey = tuple[str, str | None, str | None]


def _check_application(
    row: Any,
    by_id: dict[str, CreditRecord],
    held: dict[str, Decimal],
    debited: dict[_DebitKey, Decimal],
) -> list[str]:
    """An application's sums, and that it allocates only its own account's credits; gathers
    what held applications hold and what debited ones debited, per credit."""
    name = f"application for invoice '{row.invoice_id}'"
    problems = []
    status = ApplicationStatus(row.status)
    owed = applied = ZERO
    for item in row.line_items:
        item_applied = ZERO
        for allocation in item["allocations"]:
            credit_id, share = allocation["creditId"], Decimal(allocation["amount"])
            item_applied = add(item_applied, share)
            credit = by_id.get(credit_id)
            if credit is None or credit.account_seq != row.account_seq:
                problems.append(f"{name}: allocates credit {credit_id} of another account")
            if status is ApplicationStatus.HELD:
                held[credit_id] = add(held[credit_id], share)
            elif status is ApplicationStatus.DEBITED:
                key = (credit_id, row.invoice_id, item["entityId"])
                debited[key] = add(debited[key], share)
        if item_applied > Decimal(item["amount"]):
            problems.append(
                f"{name}: line item {item['entityId']} is paid {format_amount(item_applied)}, "
                f"more than its amount {item['amount']}"
            )
        owed = add(owed, Decimal(item["amount"]))
        applied = add(applied, item_applied)
    if (row.applied_amount, row.remaining_amount) != (applied, sub(owed, applied)):
        problems.append(
            f"{name}: appliedAmount {format_amount(row.applied_amount)} and remainingAmount "
            f"{format_amount(row.remaining_amount)} but its line items apply "
            f"{format_amount(applied)} of {format_amount(owed)}"
        )
    return problems


def _check_debits(
    lines: dict[_DebitKey, Decimal], allocated: dict[_DebitKey, Decimal]
) -> list[str]:
    return [
        f"credit {credit_id}: DEBITED lines for invoice '{invoice_id}' and entity '{entity_id}' "
        f"total {format_amount(lines.get(key, ZERO))} but debited applications allocate "
        f"{format_amount(allocated.get(key, ZERO))}"
        for key in sorted(set(lines) | set(allocated), key=str)
        for credit_id, invoice_id, entity_id in [key]
        if lines.get(key, ZERO) != allocated.get(key, ZERO)
    ]


def _check_ownership(account: AccountRecord, owned: list[CreditRecord]) -> list[str]:
    return [
        f"credit {credit.id}: belongs to account {account.id} but names account "
        f"{credit.account_id} or another organization"
        for credit in owned
        if credit.account_id != account.id or credit.org_seq != account.org_seq
    ]


def _check_credit(
    credit: CreditRecord, lines: dict[TransactionType, Decimal], held: Decimal, today: date
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
    if credit.status is CreditStatus.EXPIRED and not is_past_until(credit.effective_until, today):
        problems.append(f"{name}: EXPIRED before the day after its effectiveUntil")
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
