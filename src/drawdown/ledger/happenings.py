"""What a decision's changes mean as events (docs/webhooks.md, "The catalogue"), found by
comparing the changes with what the group loaded: credits granted, voided, expired or consumed,
applications held, debited or released, and balances that crossed a threshold. Pure: the
caller (`Draft.changes`) adds them to the decision's `Changes`."""

from datetime import date, datetime
from decimal import Decimal
from typing import Any

from drawdown.ledger import shapes
from drawdown.ledger.alerts import AlertKind, Judgement, judge
from drawdown.ledger.application import ApplicationStatus
from drawdown.ledger.changes import AlertMarks, Changes, Loaded
from drawdown.ledger.credit import CreditStatus
from drawdown.ledger.money import ZERO, sub
from drawdown.ledger.outbox import EventType, OutboxEvent, new_event
from drawdown.ledger.records import AccountRecord, CreditRecord
from drawdown.ledger.wallet import EntryType, WalletRecord

_APPLICATION_EVENTS = {
    ApplicationStatus.HELD: EventType.APPLICATION_HELD,
    ApplicationStatus.DEBITED: EventType.APPLICATION_DEBITED,
    ApplicationStatus.RELEASED: EventType.APPLICATION_RELEASED,
}


def happenings(
    loaded: Loaded, changes: Changes, now: datetime
) -> tuple[list[OutboxEvent], AlertMarks]:
    events: list[OutboxEvent] = []
    for credit in changes.new_credits:
        events.append(_credit_event(loaded, EventType.CREDIT_GRANTED, credit, now))
    for key, application in changes.applications.items():
        earlier_application = loaded.applications.get(key)
        # a HELD application written again is a new hold (a draft invoice refreshed)
        if (
            earlier_application is None
            or earlier_application.status is not application.status
            or (application.status is ApplicationStatus.HELD)
        ):
            account = loaded.accounts[key[0]]
            events.append(
                new_event(
                    _APPLICATION_EVENTS[application.status],
                    account.org_seq,
                    account.seq,
                    now,
                    {"application": shapes.application(application)},
                )
            )
    for credit in [*changes.new_credits, *changes.credits.values()]:
        earlier = loaded.credits.get(credit.id)
        was = earlier.status if earlier is not None else CreditStatus.ACTIVE
        if credit.status is was:
            continue
        if credit.status is CreditStatus.VOIDED:
            moved = sub(credit.amounts.voided, earlier.amounts.voided if earlier else ZERO)
            events.append(
                _credit_event(loaded, EventType.CREDIT_VOIDED, credit, now, voidedAmount=moved)
            )
        elif credit.status is CreditStatus.EXPIRED:
            moved = sub(credit.amounts.expired, earlier.amounts.expired if earlier else ZERO)
            events.append(
                _credit_event(loaded, EventType.CREDIT_EXPIRED, credit, now, expiredAmount=moved)
            )
        elif credit.status is CreditStatus.CONSUMED:
            events.append(_credit_event(loaded, EventType.CREDIT_CONSUMED, credit, now))
    for entry in changes.wallet_entries:
        if entry.entry_type is EntryType.CREDITED:
            wallet = next(w for w in changes.wallets.values() if w.id == entry.wallet_id)
            data = {
                "wallet": shapes.wallet(wallet),
                "topupAmount": entry.amount,
                "entry": shapes.wallet_entry(entry),
            }
            events.append(
                new_event(EventType.WALLET_TOPPED_UP, wallet.org_seq, wallet.account_seq, now, data)
            )
    marks: AlertMarks = {}
    for seq, wallet in changes.wallets.items():
        earlier_wallet = loaded.wallets.get(seq)
        wallet_before = earlier_wallet.balance if earlier_wallet is not None else ZERO
        if wallet_before == wallet.balance:
            continue
        alerts = loaded.alerts_of(seq)
        judged = judge(
            wallet_before,
            wallet.balance,
            alerts.of(AlertKind.WALLET),
            alerts.fired_of(AlertKind.WALLET),
        )
        for threshold in judged.fired:
            events.append(_wallet_event(wallet, threshold, now))
        _mark(marks, seq, AlertKind.WALLET, judged, now)
    for seq, account in changes.accounts.items():
        before_balance = loaded.accounts[seq].totals.running_balance
        after_balance = account.totals.running_balance
        if before_balance == after_balance:
            continue
        alerts = loaded.alerts_of(seq)
        judged = judge(
            before_balance,
            after_balance,
            alerts.of(AlertKind.BALANCE),
            alerts.fired_of(AlertKind.BALANCE),
        )
        for threshold in judged.fired:
            events.append(_balance_event(account, threshold, now))
        _mark(marks, seq, AlertKind.BALANCE, judged, now)
    return events, marks


def _mark(marks: AlertMarks, seq: int, kind: AlertKind, judged: Judgement, now: datetime) -> None:
    for threshold in judged.disarm:
        marks[(seq, kind, threshold)] = now
    for threshold in judged.rearm:
        marks[(seq, kind, threshold)] = None


def _wallet_event(wallet: WalletRecord, threshold: Decimal, now: datetime) -> OutboxEvent:
    data: dict[str, Any] = {"accountId": wallet.account_id}
    if threshold:
        data["threshold"] = threshold
    data["wallet"] = shapes.wallet(wallet)
    kind = EventType.WALLET_LOW if threshold else EventType.WALLET_DEPLETED
    return new_event(kind, wallet.org_seq, wallet.account_seq, now, data)


def _today(loaded: Loaded, credit: CreditRecord, now: datetime) -> date:
    account = loaded.accounts.get(credit.account_seq)
    return max(now.date(), account.as_of) if account is not None else now.date()


def _credit_event(
    loaded: Loaded, kind: EventType, credit: CreditRecord, now: datetime, **extra: Any
) -> OutboxEvent:
    data = {"credit": shapes.credit(credit, _today(loaded, credit, now)), **extra}
    return new_event(kind, credit.org_seq, credit.account_seq, now, data)


def _balance_event(account: AccountRecord, threshold: Decimal, now: datetime) -> OutboxEvent:
    data: dict[str, Any] = {"accountId": account.id}
    if threshold:
        data["threshold"] = threshold
    data["balance"] = shapes.balance(account)
    kind = EventType.BALANCE_LOW if threshold else EventType.BALANCE_DEPLETED
    return new_event(kind, account.org_seq, account.seq, now, data)
