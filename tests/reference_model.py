"""An independent model of one account's credits, written from docs/credits.md alone.

It shares no code with `src/` (nothing here imports drawdown) so that a wrong rule in the
service cannot hide behind the same wrong rule here. Money is held as whole numbers of 10^-10
(the smallest amount the API accepts), so every sum and difference is exact integer arithmetic
at any size; converting in and out refuses anything that would need rounding.

The model answers every request with the status code credits.md gives and, for 200s, the
application it expects; `credit_view` and `balance_view` are what the API must then show.
"""

from __future__ import annotations

import decimal
from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import Decimal

UNITS_PER_ONE = 10**10
MAX_UNITS = 10**28 - 1  # 18 digits before the point, 10 after
_EXACT = decimal.Context(prec=200, traps=[decimal.Inexact, decimal.Rounded, decimal.Overflow])

ACTIVE, CONSUMED, EXPIRED, VOIDED = "ACTIVE", "CONSUMED", "EXPIRED", "VOIDED"
HELD, DEBITED, RELEASED = "HELD", "DEBITED", "RELEASED"
USAGE, FIXED_FEE = "USAGE_METER_RATE_CARD", "FIXED_FEE_RATE_CARD"
WILDCARDS = {USAGE: "ALL_USAGE_METER_RATE_CARDS", FIXED_FEE: "ALL_FIXED_FEE_RATE_CARDS"}


def units(value: Decimal | int | str) -> int:
    """An amount as an exact count of 10^-10; raises if it has more than 10 decimals."""
    scaled = _EXACT.multiply(Decimal(value), Decimal(UNITS_PER_ONE))
    if scaled != scaled.to_integral_value(context=_EXACT):
        raise ValueError(f"{value} has more than 10 decimals")
    return int(scaled)


def amount(count: int) -> Decimal:
    """A count of 10^-10 back as an exact decimal."""
    return _EXACT.divide(Decimal(count), Decimal(UNITS_PER_ONE))


def fits(count: int) -> bool:
    return abs(count) <= MAX_UNITS


@dataclass
class Line:
    kind: str
    units: int
    invoice_id: str | None = None
    entity_id: str | None = None


@dataclass
class Credit:
    id: str
    units: int
    priority: int
    effective_from: date
    effective_until: date | None
    scope: list[str] | None
    created_at: datetime
    status: str = ACTIVE
    consumed: int = 0
    held: int = 0
    expired: int = 0
    voided: int = 0
    lines: list[Line] = field(default_factory=list)

    @property
    def available(self) -> int:
        return self.units - self.consumed - self.held - self.expired - self.voided

    def in_effect(self, day: date) -> bool:
        return self.effective_from <= day and (
            self.effective_until is None or day <= self.effective_until
        )

    def pays_for(self, entity_id: str, entity_type: str) -> bool:
        if not self.scope:
            return True
        return entity_id in self.scope or WILDCARDS[entity_type] in self.scope

    def order_key(self) -> tuple[int, int, date, date, datetime, bytes]:
        """Priority ascending, soonest effectiveUntil (none last), oldest effectiveFrom,
        oldest createdAt, then id."""
        return (
            self.priority,
            0 if self.effective_until is not None else 1,
            self.effective_until or date.max,
            self.effective_from,
            self.created_at,
            self.id.encode(),
        )

    def close(self, status: str, kind: str) -> None:
        """Void or expire: what is available now goes into one line; holds stay held."""
        left = self.available
        if left > 0:
            if kind == EXPIRED:
                self.expired += left
            else:
                self.voided += left
            self.lines.append(Line(kind, left))
        self.status = status

    def settle_status(self) -> None:
        if self.status == ACTIVE and self.consumed == self.units:
            self.status = CONSUMED


@dataclass
class WalletEntry:
    """A listed wallet entry (wallet.md): a released hold leaves the list."""

    kind: str  # CREDITED | DEBITED
    status: str  # COMPLETED | ON_HOLD
    units: int
    closing: int
    entity_id: str | None


@dataclass
class Wallet:
    """The account's prepaid balance (wallet.md): paid from after the credits."""

    id: str
    effective_from: date
    status: str = ACTIVE
    topped_up: int = 0
    consumed: int = 0
    held: int = 0
    entries: list[WalletEntry] = field(default_factory=list)

    @property
    def balance(self) -> int:
        return self.topped_up - self.consumed - self.held

    def pays_on(self, day: date) -> bool:
        return self.status == ACTIVE and self.effective_from <= day

    def write(self, kind: str, status: str, count: int, entity_id: str | None) -> WalletEntry:
        entry = WalletEntry(kind, status, count, self.balance, entity_id)
        self.entries.append(entry)
        return entry


@dataclass(frozen=True)
class Item:
    entity_id: str
    entity_type: str
    units: int


@dataclass
class Application:
    invoice_id: str
    mode: str
    requested_as_of: date | None
    items: tuple[Item, ...]
    status: str
    as_of: date
    # per line item: the (credit id, units) that paid it, in the order they paid
    allocations: list[list[tuple[str, int]]]
    use_wallet: bool = True
    # per line item: what the wallet paid after the credits; the wallet's entry, if any
    wallet_shares: list[int] = field(default_factory=list)
    wallet_id: str | None = None
    wallet_entry: WalletEntry | None = None

    def same_request(
        self, mode: str, as_of: date | None, items: tuple[Item, ...], use_wallet: bool
    ) -> bool:
        asked = (self.mode, self.requested_as_of, self.items, self.use_wallet)
        return asked == (mode, as_of, items, use_wallet)

    @property
    def wallet_total(self) -> int:
        return sum(self.wallet_shares)

    def view(self) -> dict[str, object]:
        lines = []
        for n, (item, paid) in enumerate(zip(self.items, self.allocations, strict=True)):
            share = self.wallet_shares[n] if self.wallet_shares else 0
            applied = sum(u for _, u in paid) + share
            shown: list[dict[str, object]] = [
                {"creditId": cid, "amount": amount(u)} for cid, u in paid
            ]
            if share:
                shown.append({"walletId": self.wallet_id, "amount": amount(share)})
            lines.append(
                {
                    "entityId": item.entity_id,
                    "entityType": item.entity_type,
                    "amount": amount(item.units),
                    "appliedAmount": amount(applied),
                    "remainingAmount": amount(item.units - applied),
                    "allocations": shown,
                }
            )
        applied_total = sum(u for paid in self.allocations for _, u in paid) + self.wallet_total
        owed_total = sum(item.units for item in self.items)
        return {
            "invoiceId": self.invoice_id,
            "status": self.status,
            "asOf": self.as_of.isoformat(),
            "appliedAmount": amount(applied_total),
            "remainingAmount": amount(owed_total - applied_total),
            "lineItems": lines,
        }


@dataclass
class Answer:
    """What the API must answer: a status code and, for applications, the body."""

    status: int
    application: Application | None = None


@dataclass
class Account:
    """One account's credits and applications as credits.md says they evolve."""

    today: date
    credits: dict[str, Credit] = field(default_factory=dict)
    applications: dict[str, Application] = field(default_factory=dict)
    wallet: Wallet | None = None

    # -- days ------------------------------------------------------------------------------

    def move_to(self, day: date) -> None:
        """Days only go forward; a credit past its effectiveUntil expires on the next day."""
        self.today = max(self.today, day)
        for credit in self.credits.values():
            past = credit.effective_until is not None and self.today > credit.effective_until
            if credit.status == ACTIVE and past:
                credit.close(EXPIRED, EXPIRED)

    # -- grants ----------------------------------------------------------------------------

    def grant(
        self,
        credit_id: str,
        count: int,
        priority: int,
        effective_from: date,
        effective_until: date | None,
        scope: list[str] | None,
        now: datetime,
    ) -> Credit:
        if count <= 0 or not fits(count):
            raise ValueError("the caller must not ask the model for an invalid grant")
        credit = Credit(credit_id, count, priority, effective_from, effective_until, scope, now)
        credit.lines.append(Line("CREDITED", count))
        self.credits[credit_id] = credit
        self.move_to(self.today)  # a back-dated grant expires at once
        return credit

    @staticmethod
    def grant_status(count: int, effective_from: date, effective_until: date | None) -> int:
        if count <= 0 or not fits(count):
            return 400
        if effective_until is not None and effective_until < effective_from:
            return 400
        return 200

    # -- applications ----------------------------------------------------------------------

    def apply(
        self,
        invoice_id: str,
        mode: str,
        as_of: date | None,
        items: tuple[Item, ...],
        use_wallet: bool = True,
    ) -> Answer:
        if any(item.units < 0 or not fits(item.units) for item in items) or not items:
            return Answer(400)
        existing = self.applications.get(invoice_id)
        if existing is not None and existing.status == DEBITED:
            if existing.same_request(mode, as_of, items, use_wallet):
                return Answer(200, existing)
            return Answer(409)
        if existing is not None and existing.status == HELD:
            self._give_back(existing)
        day = as_of or self.today
        candidates = sorted(
            (c for c in self.credits.values() if c.status == ACTIVE and c.in_effect(day)),
            key=Credit.order_key,
        )
        allocations: list[list[tuple[str, int]]] = []
        for item in items:
            owed = item.units
            paid: list[tuple[str, int]] = []
            for credit in candidates:
                if owed == 0:
                    break
                if credit.available <= 0 or not credit.pays_for(item.entity_id, item.entity_type):
                    continue
                share = min(owed, credit.available)
                credit.held += share
                owed -= share
                paid.append((credit.id, share))
            allocations.append(paid)
        application = Application(
            invoice_id, mode, as_of, items, HELD, day, allocations, use_wallet
        )
        wallet = self.wallet if use_wallet else None
        if wallet is not None and wallet.pays_on(day):
            # after the credits, line by line, as far as the wallet's balance goes
            left = wallet.balance
            for item, paid in zip(items, allocations, strict=True):
                share = min(item.units - sum(u for _, u in paid), left)
                left -= share
                application.wallet_shares.append(share)
            total = application.wallet_total
            if total > 0:
                application.wallet_id = wallet.id
                if mode == "DEBIT":
                    wallet.consumed += total
                    entry = wallet.write("DEBITED", "COMPLETED", total, invoice_id)
                else:
                    wallet.held += total
                    entry = wallet.write("DEBITED", "ON_HOLD", total, invoice_id)
                application.wallet_entry = entry
        self.applications[invoice_id] = application
        if mode == "DEBIT":
            self._capture_credits(application)
            application.status = DEBITED
        return Answer(200, application)

    def capture(self, invoice_id: str) -> Answer:
        application = self.applications.get(invoice_id)
        if application is None:
            return Answer(404)
        if application.status == RELEASED:
            return Answer(409)
        if application.status == HELD:
            self._capture(application)
        return Answer(200, application)

    def release(self, invoice_id: str) -> Answer:
        application = self.applications.get(invoice_id)
        if application is None:
            return Answer(404)
        if application.status == DEBITED:
            return Answer(409)
        if application.status == HELD:
            self._give_back(application)
            application.status = RELEASED
        return Answer(200, application)

    def _capture(self, application: Application) -> None:
        self._capture_credits(application)
        entry = application.wallet_entry
        if entry is not None and self.wallet is not None:
            self.wallet.held -= entry.units
            self.wallet.consumed += entry.units
            entry.status = "COMPLETED"
        application.status = DEBITED

    def _capture_credits(self, application: Application) -> None:
        for item, paid in zip(application.items, application.allocations, strict=True):
            for credit_id, share in paid:
                credit = self.credits[credit_id]
                credit.held -= share
                credit.consumed += share
                credit.lines.append(Line("DEBITED", share, application.invoice_id, item.entity_id))
                credit.settle_status()

    def _give_back(self, application: Application) -> None:
        """A released hold returns to its credit, or to the credit's closing line when the
        credit was voided or expired meanwhile."""
        for paid in application.allocations:
            for credit_id, share in paid:
                credit = self.credits[credit_id]
                credit.held -= share
                if credit.status == VOIDED:
                    credit.voided += share
                    credit.lines.append(Line(VOIDED, share))
                elif credit.status == EXPIRED:
                    credit.expired += share
                    credit.lines.append(Line(EXPIRED, share))
        entry = application.wallet_entry
        if entry is not None and self.wallet is not None and entry.status == "ON_HOLD":
            # the hold leaves the list; the entries after it keep their closing balances
            self.wallet.held -= entry.units
            self.wallet.entries.remove(entry)
            application.wallet_entry = None

    # -- the wallet ------------------------------------------------------------------------

    def top_up(self, count: int, wallet_id: str) -> Wallet:
        """The first top-up makes the wallet, ACTIVE and in effect from today."""
        if self.wallet is None:
            self.wallet = Wallet(wallet_id, self.today)
        self.wallet.topped_up += count
        self.wallet.write("CREDITED", "COMPLETED", count, None)
        return self.wallet

    def set_wallet_status(self, status: str) -> Answer:
        if self.wallet is None:
            return Answer(404)
        self.wallet.status = status
        return Answer(200)

    def wallet_view(self) -> dict[str, object]:
        assert self.wallet is not None
        return {
            "balance": amount(self.wallet.balance),
            "holdAmount": amount(self.wallet.held),
            "status": self.wallet.status,
        }

    def entries_view(self) -> list[tuple[object, ...]]:
        assert self.wallet is not None
        return [
            (e.kind, e.status, amount(e.units), amount(e.closing), e.entity_id)
            for e in self.wallet.entries
        ]

    # -- void ------------------------------------------------------------------------------

    def void(self, credit_id: str) -> Answer:
        credit = self.credits.get(credit_id)
        if credit is None:
            return Answer(404)
        if credit.status != ACTIVE:
            return Answer(400)
        credit.close(VOIDED, VOIDED)
        return Answer(200)

    # -- what the API must show ------------------------------------------------------------

    def credit_view(self, credit_id: str) -> dict[str, object]:
        credit = self.credits[credit_id]
        return {
            "status": credit.status,
            "creditAmount": amount(credit.units),
            "consumedAmount": amount(credit.consumed),
            "holdAmount": amount(credit.held),
            "transactions": [
                (line.kind, amount(line.units), line.invoice_id, line.entity_id)
                for line in credit.lines
            ],
        }

    def balance_view(self) -> dict[str, Decimal]:
        active = applicable_left = held = inapplicable_left = 0
        for credit in self.credits.values():
            if credit.status != ACTIVE:
                continue
            active += credit.units
            if credit.effective_from > self.today:
                inapplicable_left += credit.units - credit.consumed
            else:
                applicable_left += credit.units - credit.consumed
                held += credit.held
        return {
            "activeCredits": amount(active),
            "availableBalance": amount(applicable_left),
            "runningBalance": amount(applicable_left - held),
            "inapplicableCredits": amount(inapplicable_left),
        }

    def check_invariants(self) -> None:
        """credits.md "One credit's arithmetic" and wallet.md's, on the model itself."""
        if self.wallet is not None:
            listed = self.wallet.entries
            assert self.wallet.balance >= 0 and self.wallet.held >= 0
            assert self.wallet.held == sum(e.units for e in listed if e.status == "ON_HOLD")
            assert self.wallet.topped_up == sum(e.units for e in listed if e.kind == "CREDITED")
        for credit in self.credits.values():
            totals: dict[str, int] = {}
            for line in credit.lines:
                assert line.units > 0
                totals[line.kind] = totals.get(line.kind, 0) + line.units
            assert totals["CREDITED"] == credit.units
            assert totals.get("DEBITED", 0) == credit.consumed
            assert totals.get(EXPIRED, 0) == credit.expired
            assert totals.get(VOIDED, 0) == credit.voided
            assert credit.available >= 0 and credit.held >= 0
