"""An account's balance, kept as the sum of each active credit's contribution.

A credit contributes only while it is ACTIVE and not past its last day; whether it counts as
applicable or not-yet-applicable depends on the day. Totals are therefore valid through the day
before the first of the account's credits changes class (`valid_through`), and are recomputed
from the credits after that.
"""

from dataclasses import dataclass
from datetime import date, timedelta
from decimal import Decimal

from drawdown.ledger.credit import CreditAmounts, CreditStatus, is_past_until
from drawdown.ledger.money import ZERO, add, sub


@dataclass(frozen=True)
class BalanceTotals:
    active_amount: Decimal = ZERO
    applicable_left: Decimal = ZERO
    applicable_held: Decimal = ZERO
    inapplicable_left: Decimal = ZERO

    def __add__(self, other: "BalanceTotals") -> "BalanceTotals":
        return BalanceTotals(
            add(self.active_amount, other.active_amount),
            add(self.applicable_left, other.applicable_left),
            add(self.applicable_held, other.applicable_held),
            add(self.inapplicable_left, other.inapplicable_left),
        )

    def __sub__(self, other: "BalanceTotals") -> "BalanceTotals":
        return BalanceTotals(
            sub(self.active_amount, other.active_amount),
            sub(self.applicable_left, other.applicable_left),
            sub(self.applicable_held, other.applicable_held),
            sub(self.inapplicable_left, other.inapplicable_left),
        )

    @property
    def available_balance(self) -> Decimal:
        return self.applicable_left

    @property
    def running_balance(self) -> Decimal:
        return sub(self.applicable_left, self.applicable_held)


NO_TOTALS = BalanceTotals()


def contribution(
    status: CreditStatus,
    amounts: CreditAmounts,
    effective_from: date,
    effective_until: date | None,
    today: date,
) -> BalanceTotals:
    """What one credit adds to its account's balance on `today`."""
    if status is not CreditStatus.ACTIVE or is_past_until(effective_until, today):
        return NO_TOTALS
    left = sub(amounts.credit_amount, amounts.consumed)
    if effective_from > today:
        return BalanceTotals(amounts.credit_amount, ZERO, ZERO, left)
    return BalanceTotals(amounts.credit_amount, left, amounts.held, ZERO)


def last_stable_day(
    status: CreditStatus, effective_from: date, effective_until: date | None, today: date
) -> date | None:
    """The last day on which this credit's contribution keeps its class; None if forever."""
    if status is not CreditStatus.ACTIVE or is_past_until(effective_until, today):
        return None
    if effective_from > today:
        return effective_from - timedelta(days=1)
    return effective_until


def earliest(first: date | None, second: date | None) -> date | None:
    if first is None:
        return second
    if second is None:
        return first
    return min(first, second)
