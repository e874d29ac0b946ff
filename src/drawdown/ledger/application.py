"""Credit applications: an invoice's line items paid from credits, held or debited."""

from enum import StrEnum


class ApplicationMode(StrEnum):
    HOLD = "HOLD"
    DEBIT = "DEBIT"


class ApplicationStatus(StrEnum):
    HELD = "HELD"
    DEBITED = "DEBITED"
    RELEASED = "RELEASED"
