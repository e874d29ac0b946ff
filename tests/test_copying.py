"""`copied`, the shallow copy a decision makes of a record before changing it: equal to what
`dataclasses.replace` gives, and independent of the record it came from."""

from dataclasses import dataclass, fields, replace
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any

import pytest

from drawdown.ledger.balance import BalanceTotals
from drawdown.ledger.copying import copied
from drawdown.ledger.credit import CreditAmounts, CreditStatus
from drawdown.ledger.records import AccountRecord, CreditRecord
from drawdown.ledger.wallet import WalletRecord, new_wallet

NOW = datetime(2026, 11, 24, 12, tzinfo=UTC)


def account() -> AccountRecord:
    return AccountRecord(
        seq=1,
        org_seq=1,
        id="acc",
        customer_seq=1,
        customer_id="cust",
        name="Account",
        invoice_currency="USD",
        status="ACTIVE",
        details={"k": "v"},
        created_at=NOW,
        updated_at=NOW,
        totals=BalanceTotals(Decimal(5), Decimal(4), Decimal(1), Decimal(0)),
        as_of=NOW.date(),
        valid_through=date(2026, 12, 31),
        balance_updated_at=NOW,
    )


def credit() -> CreditRecord:
    return CreditRecord(
        seq=1,
        org_seq=1,
        account_seq=1,
        id="cred.1",
        account_id="acc",
        customer_id="cust",
        credit_unit="USD",
        purpose="PREPAID_CREDIT",
        applicable_entity_ids=["um.a"],
        effective_from=date(2026, 1, 1),
        effective_until=None,
        priority=1,
        grantor_id=None,
        idempotency_key=None,
        request_hash="",
        status=CreditStatus.ACTIVE,
        amounts=CreditAmounts(Decimal("10.5"), Decimal(2)),
        created_at=NOW,
        updated_at=NOW,
    )


RECORDS: list[Any] = [
    account(),
    credit(),
    CreditAmounts(Decimal("0.0000000001"), Decimal(0), Decimal(0)),
    new_wallet(1, 1, "acc", "cust", "USD", NOW),
]


@pytest.mark.parametrize("record", RECORDS, ids=lambda record: type(record).__name__)
def test_a_copy_equals_the_record_and_changes_apart_from_it(record: Any) -> None:
    twin = copied(record)
    assert type(twin) is type(record)
    assert twin == replace(record) == record
    assert twin is not record
    first = fields(record)[0].name
    before = getattr(record, first)
    setattr(twin, first, 999)
    assert getattr(record, first) == before
    assert getattr(twin, first) == 999


def test_a_copy_is_shallow_as_replace_is() -> None:
    original = credit()
    twin = copied(original)
    assert twin.amounts is original.amounts  # Draft.edit copies the amounts itself
    assert twin.applicable_entity_ids is original.applicable_entity_ids


@dataclass(slots=True)
class Slotted:
    amount: Decimal
    note: str = ""


@dataclass(frozen=True)
class One:
    amount: Decimal


@dataclass
class Checked:
    amount: Decimal

    def __post_init__(self) -> None:
        if self.amount < 0:
            raise ValueError("negative")


def test_records_of_any_shape_copy_as_replace_copies_them() -> None:
    slotted = Slotted(Decimal(1), "n")
    assert copied(slotted) == slotted and copied(slotted) is not slotted
    one = One(Decimal(2))
    assert copied(one) == one
    checked = Checked(Decimal(3))
    checked.amount = Decimal(-1)
    for copy in (replace, copied):  # both make the copy by __init__, checks included
        with pytest.raises(ValueError, match="negative"):
            copy(checked)


def test_a_wallet_copy_keeps_its_balance() -> None:
    wallet: WalletRecord = new_wallet(1, 1, "acc", "cust", "USD", NOW)
    wallet.topped_up = Decimal("12.5")
    twin = copied(wallet)
    twin.consumed = Decimal("2.5")
    assert (wallet.balance, twin.balance) == (Decimal("12.5"), Decimal(10))
