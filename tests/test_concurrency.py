"""Many server processes on one database: concurrent debits on one account that holds less
than they ask for, with idempotent grants racing them. Exactly the granted amount is spent,
nothing answers 5xx, and every credit reconciles."""

import asyncio
import json
import random
import time
import uuid
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import httpx

from drawdown.clock import FixedClock
from drawdown.store.database import Database
from tests.live_server import create_key, live_server
from tests.oracle import books_problems

WORKERS = 4
DEBITS = 300
DRAIN_DEBITS = 60
GRANT_KEYS = 12
GRANT_REPEATS = 3
GRANT_AMOUNT = Decimal("6.25")
DEBIT_AMOUNT = Decimal("0.37")


def _exact(response: httpx.Response) -> Any:
    return json.loads(response.text, parse_float=Decimal, parse_int=Decimal)


async def test_concurrent_debits_spend_exactly_what_was_granted(
    database_url: str, db: Database
) -> None:
    org = f"race-{uuid.uuid4().hex}"
    key = create_key(database_url, org)
    with live_server(database_url, workers=WORKERS) as server:
        limits = httpx.Limits(max_connections=64)
        async with httpx.AsyncClient(
            base_url=server.base_url,
            headers={"Authorization": f"Bearer {key}", "Content-Type": "application/json"},
            limits=limits,
            timeout=60,
        ) as http:
            created = await http.post(
                "/customers",
                content=json.dumps(
                    {
                        "id": "race",
                        "name": "Race Customer",
                        "primaryEmail": "race@example.test",
                        "address": {},
                        "account": {"id": "race-acc", "name": "Race account"},
                    }
                ),
            )
            assert created.status_code == 201

            def grant(index: int) -> Any:
                body = (
                    '{"accountId":"race-acc","purpose":"PREPAID_CREDIT",'
                    f'"effectiveFrom":"2026-01-01","creditAmount":{GRANT_AMOUNT},'
                    f'"priority":{index % 3},"idempotencyKey":"race-grant-{index}"}}'
                )
                return http.post("/credits", content=body)

            def debit(invoice: str) -> Any:
                body = (
                    f'{{"invoiceId":"{invoice}","mode":"DEBIT","lineItems":[{{"entityId":'
                    f'"um.api","entityType":"USAGE_METER_RATE_CARD","amount":{DEBIT_AMOUNT}}}]}}'
                )
                return http.post("/accounts/race-acc/credit_applications", content=body)

            calls = [grant(i) for i in range(GRANT_KEYS) for _ in range(GRANT_REPEATS)]
            calls += [debit(f"inv-{n}") for n in range(DEBITS)]
            random.Random(7).shuffle(calls)
            started = time.monotonic()
            responses = await asyncio.gather(*calls)
            responses += await asyncio.gather(*(debit(f"drain-{n}") for n in range(DRAIN_DEBITS)))
            elapsed = time.monotonic() - started

            statuses = sorted({r.status_code for r in responses})
            assert statuses == [200], [r.text for r in responses if r.status_code != 200][:3]
            grants = [_exact(r) for r in responses if "creditAmount" in r.text]
            granted_ids = {g["id"] for g in grants}
            assert len(granted_ids) == GRANT_KEYS
            granted = GRANT_AMOUNT * GRANT_KEYS
            applied = sum(
                (_exact(r)["appliedAmount"] for r in responses if "invoiceId" in r.text),
                Decimal(0),
            )
            assert applied == granted

            consumed = Decimal(0)
            for credit_id in granted_ids:
                credit = _exact(await http.get(f"/credits/{credit_id}"))
                debited = sum(
                    (
                        t["amount"]
                        for t in credit["transactions"]
                        if t["transactionType"] == "DEBITED"
                    ),
                    Decimal(0),
                )
                assert debited == credit["consumedAmount"]
                assert credit["status"] == "CONSUMED"
                consumed += credit["consumedAmount"]
            assert consumed == granted
            balance = _exact(await http.get("/accounts/race-acc/credit_balance"))
            assert (balance["activeCredits"], balance["availableBalance"]) == (0, 0)

    clock = FixedClock(datetime.now(UTC))
    assert await books_problems(db, clock, org) == []
    requests = len(responses)
    print(
        f"\nconcurrency: {requests} requests ({DEBITS + DRAIN_DEBITS} debits, "
        f"{GRANT_KEYS * GRANT_REPEATS} grants on {GRANT_KEYS} keys) over {WORKERS} processes "
        f"in {elapsed:.2f} s; asked {DEBIT_AMOUNT * (DEBITS + DRAIN_DEBITS)}, "
        f"granted {granted}, spent {applied}"
    )


TOPUP_KEYS = 8
TOPUP_REPEATS = 3
TOPUP_AMOUNT = Decimal("4.05")


async def test_with_a_wallet_behind_the_credits_nothing_is_spent_twice(
    database_url: str, db: Database
) -> None:
    """Grants, idempotent top-ups and debits race on one account over several processes: the
    debits spend the credits first, then the wallet, and exactly what both held is spent."""
    org = f"race-wallet-{uuid.uuid4().hex}"
    key = create_key(database_url, org)
    with live_server(database_url, workers=WORKERS) as server:
        async with httpx.AsyncClient(
            base_url=server.base_url,
            headers={"Authorization": f"Bearer {key}", "Content-Type": "application/json"},
            limits=httpx.Limits(max_connections=64),
            timeout=60,
        ) as http:
            created = await http.post(
                "/customers",
                content=json.dumps(
                    {
                        "id": "race",
                        "name": "Race Customer",
                        "primaryEmail": "race@example.test",
                        "address": {},
                        "account": {"id": "race-acc", "name": "Race account"},
                    }
                ),
            )
            assert created.status_code == 201

            def grant(index: int) -> Any:
                body = (
                    '{"accountId":"race-acc","purpose":"PREPAID_CREDIT",'
                    f'"effectiveFrom":"2026-01-01","creditAmount":{GRANT_AMOUNT},'
                    f'"priority":{index % 3},"idempotencyKey":"race-grant-{index}"}}'
                )
                return http.post("/credits", content=body)

            def top_up(index: int) -> Any:
                return http.post(
                    "/accounts/race-acc/wallet_topup",
                    content=f'{{"topupAmount":{TOPUP_AMOUNT}}}',
                    headers={"Idempotency-Key": f"race-topup-{index}"},
                )

            def debit(invoice: str) -> Any:
                body = (
                    f'{{"invoiceId":"{invoice}","mode":"DEBIT","lineItems":[{{"entityId":'
                    f'"um.api","entityType":"USAGE_METER_RATE_CARD","amount":{DEBIT_AMOUNT}}}]}}'
                )
                return http.post("/accounts/race-acc/credit_applications", content=body)

            calls = [grant(i) for i in range(GRANT_KEYS) for _ in range(GRANT_REPEATS)]
            calls += [top_up(i) for i in range(TOPUP_KEYS) for _ in range(TOPUP_REPEATS)]
            calls += [debit(f"inv-{n}") for n in range(DEBITS)]
            random.Random(11).shuffle(calls)
            responses = await asyncio.gather(*calls)
            responses += await asyncio.gather(
                *(debit(f"drain-{n}") for n in range(DRAIN_DEBITS + 60))
            )

            statuses = sorted({r.status_code for r in responses})
            assert statuses == [200], [r.text for r in responses if r.status_code != 200][:3]
            granted = GRANT_AMOUNT * GRANT_KEYS
            topped = TOPUP_AMOUNT * TOPUP_KEYS
            debits = [_exact(r) for r in responses if "invoiceId" in r.text]
            by_credits = by_wallet = Decimal(0)
            for applied in debits:
                for share in applied["lineItems"][0]["allocations"]:
                    if "walletId" in share:
                        by_wallet += share["amount"]
                    else:
                        by_credits += share["amount"]
            assert (by_credits, by_wallet) == (granted, topped)
            wallet = _exact(await http.get("/accounts/race-acc/wallet"))
            assert (wallet["balance"], wallet["holdAmount"]) == (0, 0)
            entries: list[Any] = []
            token = None
            while True:
                page = await http.get(
                    "/accounts/race-acc/wallet/entries",
                    params={"pageSize": 50, **({"nextToken": token} if token else {})},
                )
                entries += _exact(page)["data"]
                token = page.json().get("nextToken")
                if not token:
                    break
            credited = [e for e in entries if e["transactionType"] == "CREDITED"]
            assert len(credited) == TOPUP_KEYS  # each key topped up once
            assert (
                sum((e["amount"] for e in entries if e["transactionType"] == "DEBITED"), Decimal(0))
                == topped
            )

    clock = FixedClock(datetime.now(UTC))
    assert await books_problems(db, clock, org) == []
