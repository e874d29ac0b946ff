"""Balance alerts (docs/webhooks.md, "Balance alerts"), judged by every decision that moves a
balance, in its transaction, from the balance before the change to the balance after it.

A threshold `t` fires when the balance moves down to below `t` while `t` is armed, and is then
disarmed (`fired`). It is armed when it has not fired, or when the balance was at or above it
before this change (it rose back since, whichever write raised it: a grant saved without the
account's lock re-arms nothing itself). 0 is always judged, as "depleted": the balance moved
down to 0.
"""

from dataclasses import dataclass, field
from decimal import Decimal
from enum import StrEnum

DEPLETED = Decimal(0)


class AlertKind(StrEnum):
    BALANCE = "BALANCE"  # the credits' runningBalance
    WALLET = "WALLET"  # the wallet's balance


@dataclass(frozen=True)
class AccountAlerts:
    """An account's thresholds in force (its own lists, else its organization's) and those
    that have fired and are not armed again."""

    thresholds: tuple[Decimal, ...] = ()
    wallet_thresholds: tuple[Decimal, ...] = ()
    fired: frozenset[tuple[AlertKind, Decimal]] = field(default_factory=frozenset)

    def of(self, kind: AlertKind) -> tuple[Decimal, ...]:
        return self.thresholds if kind is AlertKind.BALANCE else self.wallet_thresholds

    def fired_of(self, kind: AlertKind) -> frozenset[Decimal]:
        return frozenset(t for k, t in self.fired if k is kind)

    def with_marks(self, marks: dict[tuple[AlertKind, Decimal], bool]) -> "AccountAlerts":
        """After a change: True marks a threshold fired, False armed again."""
        fired = set(self.fired)
        for key, on in marks.items():
            if on:
                fired.add(key)
            else:
                fired.discard(key)
        return AccountAlerts(self.thresholds, self.wallet_thresholds, frozenset(fired))


NO_ALERTS = AccountAlerts()


@dataclass(frozen=True)
class Judgement:
    fired: list[Decimal]  # thresholds that fire now, highest first (DEPLETED last)
    disarm: set[Decimal]  # to mark fired
    rearm: set[Decimal]  # to mark armed again


def _below(balance: Decimal, threshold: Decimal) -> bool:
    return balance <= 0 if threshold == DEPLETED else balance < threshold


def judge(
    before: Decimal, after: Decimal, thresholds: tuple[Decimal, ...], fired: frozenset[Decimal]
) -> Judgement:
    fires: list[Decimal] = []
    disarm: set[Decimal] = set()
    rearm: set[Decimal] = set()
    for threshold in sorted({*thresholds, DEPLETED}, reverse=True):
        if not _below(after, threshold):
            if threshold in fired:
                rearm.add(threshold)
            continue
        armed = threshold not in fired or not _below(before, threshold)
        if armed and after < before:
            fires.append(threshold)
            disarm.add(threshold)
    return Judgement(fires, disarm, rearm)
