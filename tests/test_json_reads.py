"""PostgreSQL answers the hottest reads as finished JSON; it must say exactly what the Python
renderer says for the same rows."""

import json
from decimal import Decimal
from typing import Any

import httpx
import msgspec
import pytest

from drawdown.api import render
from drawdown.clock import FixedClock
from drawdown.services import credits as service
from drawdown.services.keys import find_principal
from drawdown.store import ledger
from drawdown.store.database import Database
from tests.conftest import ENGINE
from tests.helpers import apply, grant, make_account

pytestmark = pytest.mark.skipif(ENGINE != "postgresql", reason="the JSON path is PostgreSQL's")


def _exact(text: str | bytes) -> Any:
    return json.loads(text, parse_float=Decimal)


async def _org_seq(db: Database, client: httpx.AsyncClient) -> int:
    key = client.headers["Authorization"].removeprefix("Bearer ")
    async with db.read() as conn:
        principal = await find_principal(conn, key)
    assert principal is not None
    return principal.org_seq


async def test_details_json_matches_the_python_renderer(
    client: httpx.AsyncClient, db: Database, clock: FixedClock
) -> None:
    clock.set(clock.now().replace(microsecond=150000))  # a fraction with trailing zeros
    await make_account(client)
    granted = await grant(
        client,
        amount=1000.5,
        effectiveUntil="2027-01-31",
        grantorId="sales",
        idempotencyKey="k-1",
        applicableEntityIds=["um.item-0", "ALL_FIXED_FEE_RATE_CARDS"],
    )
    await apply(client, "inv-1", [10.25, 0], mode="DEBIT")
    await apply(client, "inv-2", [3])
    org_seq = await _org_seq(db, client)
    async with db.read() as conn:
        record = await ledger.find_credit(conn, org_seq, granted["id"])
        assert record is not None
        lines = await ledger.transactions_of(conn, record)
    python = _exact(msgspec.json.encode(render.credit_details(record, lines, clock.now().date())))
    fast = _exact(await service.credit_details_json(db, org_seq, record.id, clock))
    assert fast == python
    assert [line["transactionType"] for line in fast["transactions"]] == ["CREDITED", "DEBITED"]


async def test_balance_json_matches_the_python_renderer(
    client: httpx.AsyncClient, db: Database, clock: FixedClock
) -> None:
    await make_account(client)
    await grant(client, amount=100.1)
    await grant(client, amount=5, effectiveFrom="2027-01-01")
    await apply(client, "inv-1", [0.1])
    org_seq = await _org_seq(db, client)
    account = await service.account_balance(db, org_seq, "acc-1", clock)
    python = _exact(msgspec.json.encode(render.balance(account)))
    fast = _exact(await service.balance_json(db, org_seq, "acc-1", clock.now()))
    assert fast == python
    assert (fast["activeCredits"], fast["runningBalance"]) == (Decimal("105.1"), 100)
