"""One credit's amounts and status, as credits.md defines them."""

from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from enum import StrEnum

from drawdown.ledger.money import ZERO, sub, total


class CreditStatus(StrEnum):
    ACTIVE = "ACTIVE"
    CONSUMED = "CONSUMED"
    EXPIRED = "EXPIRED"
    VOIDED = "VOIDED"


class TransactionType(StrEnum):
    CREDITED = "CREDITED"
    DEBITED = "DEBITED"
    EXPIRED = "EXPIRED"
    VOIDED = "VOIDED"


@dataclass
class CreditAmounts:
    """Where a credit's `creditAmount` sits now; the parts always add up to it."""

    credit_amount: Decimal
    consumed: Decimal = ZERO
    held: Decimal = ZERO
    expired: Decimal = ZERO
    voided: Decimal = ZERO

    @property
    def available(self) -> Decimal:
        return sub(self.credit_amount, total((self.consumed, self.held, self.expired, self.voided)))


def is_past_until(effective_until: date | None, today: date) -> bool:
    """True once the day after `effectiveUntil` has begun."""
    return effective_until is not None and today > effective_until


def effective_status(
    stored: CreditStatus, effective_until: date | None, today: date
) -> CreditStatus:
    """The status a read shows: an active credit past its last day is expired, swept or not."""
    if stored is CreditStatus.ACTIVE and is_past_until(effective_until, today):
        return CreditStatus.EXPIRED
    return stored


def status_after_change(stored: CreditStatus, amounts: CreditAmounts) -> CreditStatus:
    """An active credit whose whole amount is consumed becomes CONSUMED; others keep theirs."""
    if stored is CreditStatus.ACTIVE and amounts.consumed == amounts.credit_amount:
        return CreditStatus.CONSUMED
    return stored


def void_refusal(status: CreditStatus) -> str | None:
    """Why a credit in `status` cannot be voided, or None when it can."""
    if status is CreditStatus.VOIDED:
        return "the credit is already voided"
    if status is CreditStatus.EXPIRED:
        return "the credit has expired; nothing is left to void"
    if status is CreditStatus.CONSUMED:
        return "the credit is fully consumed; nothing is left to void"
    return None
