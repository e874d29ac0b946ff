"""Updating and deleting an account (docs/wallet.md, "Customers and accounts"): decisions on
the account's lock, ordered with every money write of it, so no grant, top-up or hold slips in
between the check and the change."""

from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any

from drawdown.errors import Conflict
from drawdown.ledger.application import ApplicationStatus
from drawdown.ledger.changes import Changes, Loaded
from drawdown.ledger.draft import Draft
from drawdown.ledger.money import add, format_amount
from drawdown.ledger.records import AccountRecord

# how many held invoices a refusal names
NAMED_INVOICES = 5


@dataclass(frozen=True)
class AccountUpdate:
    """The fields a PATCH gives (None: unchanged); `details` replaces those detail fields."""

    name: str | None = None
    status: str | None = None
    invoice_currency: str | None = None
    details: dict[str, Any] = field(default_factory=dict)


def update_account(
    loaded: Loaded, org_seq: int, account_id: str, update: AccountUpdate, now: datetime
) -> tuple[AccountRecord, Changes]:
    """A change of currency is refused once the account has a credit (of any status) or a
    wallet: their amounts are in the currency they were made in."""
    draft = Draft(loaded, now)
    account_seq = draft.account_seq(org_seq, account_id)
    account = loaded.accounts[account_seq]
    currency = update.invoice_currency
    if currency is not None and currency != account.invoice_currency:
        holdings = loaded.holdings[account_seq]
        granted = holdings.has_credits or any(
            credit.account_seq == account_seq for credit in loaded.credits.values()
        )
        if granted or draft.wallet(account_seq) is not None:
            what = "credits" if granted else "a wallet"
            raise Conflict(
                f"invoiceCurrency cannot change from {account.invoice_currency} to {currency}: "
                f"account '{account_id}' has {what} in {account.invoice_currency}; create a new "
                f"account to invoice in {currency}"
            )
    changed = replace(
        account,
        name=update.name if update.name is not None else account.name,
        status=update.status if update.status is not None else account.status,
        invoice_currency=currency if currency is not None else account.invoice_currency,
        details={**account.details, **update.details},
        updated_at=max(now, account.updated_at),
    )
    draft.profiles[account_seq] = changed
    return changed, draft.changes()


def archive_account(
    loaded: Loaded, org_seq: int, account_id: str, now: datetime
) -> tuple[None, Changes]:
    """Archive the account once it holds no money: no credit available or held (after what is
    past its last day expires), no wallet balance or hold, no HELD application. Otherwise a 409
    that says what remains."""
    draft = Draft(loaded, now)
    account_seq = draft.account_seq(org_seq, account_id)
    book = draft.book(account_seq)
    remains = []
    totals = book.account.totals
    left = add(totals.applicable_left, totals.inapplicable_left)
    if left > 0:
        remains.append(
            f"credits with {format_amount(left)} left ({format_amount(totals.applicable_held)} "
            "of it held): void or spend them"
        )
    wallet = draft.wallet(account_seq)
    if wallet is not None and (wallet.balance > 0 or wallet.wallet.held > 0):
        remains.append(
            f"a wallet with a balance of {format_amount(wallet.balance)} and "
            f"{format_amount(wallet.wallet.held)} held: spend its balance with a DEBIT "
            "application"
        )
    held = _held_invoices(loaded, account_seq)
    if held:
        named = ", ".join(f"'{invoice}'" for invoice in held[:NAMED_INVOICES])
        more = " and more" if len(held) > NAMED_INVOICES else ""
        remains.append(f"held applications for invoices {named}{more}: capture or release them")
    if remains:
        raise Conflict(
            f"account '{account_id}' still holds money and was not deleted: {'; '.join(remains)}"
        )
    draft.profiles[account_seq] = replace(book.account, archived_at=now, updated_at=now)
    return None, draft.changes()


def _held_invoices(loaded: Loaded, account_seq: int) -> list[str]:
    """The account's HELD invoices: as stored, with what the group's earlier decisions did."""
    held = set(loaded.holdings[account_seq].held_invoices)
    for (seq, invoice_id), application in loaded.applications.items():
        if seq == account_seq:
            if application.status is ApplicationStatus.HELD:
                held.add(invoice_id)
            else:
                held.discard(invoice_id)
    return sorted(held)
