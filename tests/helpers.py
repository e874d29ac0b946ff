"""Small builders shared by the API tests."""

import json
import re
from decimal import Decimal
from typing import Any

import httpx


def decimal_json(response: httpx.Response) -> Any:
    """The response body with every number read exactly."""
    return json.loads(response.text, parse_float=Decimal, parse_int=Decimal)


async def make_account(
    client: httpx.AsyncClient, account_id: str = "acc-1", currency: str | None = None
) -> dict[str, Any]:
    account: dict[str, Any] = {"id": account_id, "name": f"Account {account_id}"}
    if currency:
        account["invoiceCurrency"] = currency
    response = await client.post(
        "/customers",
        json={
            "id": f"cust-{account_id}",
            "name": "Customer One",
            "primaryEmail": "billing@example.test",
            "address": {"line1": "1 Main St", "city": "Springfield", "country": "US"},
            "account": account,
        },
    )
    assert response.status_code == 201, response.text
    return dict(response.json()["account"])


def grant_body(account_id: str = "acc-1", amount: Any = 100, **extra: Any) -> dict[str, Any]:
    body = {
        "accountId": account_id,
        "purpose": "PREPAID_CREDIT",
        "effectiveFrom": "2026-01-01",
        "creditAmount": amount,
        "priority": 1,
    }
    body.update(extra)
    return body


async def grant(
    client: httpx.AsyncClient, account_id: str = "acc-1", amount: Any = 100, **extra: Any
) -> dict[str, Any]:
    response = await client.post("/credits", json=grant_body(account_id, amount, **extra))
    assert response.status_code == 200, response.text
    return dict(response.json())


async def post_raw(client: httpx.AsyncClient, path: str, text: str) -> httpx.Response:
    return await client.post(path, content=text, headers={"Content-Type": "application/json"})


async def apply(
    client: httpx.AsyncClient,
    invoice_id: str,
    amounts: list[Any],
    mode: str = "HOLD",
    account_id: str = "acc-1",
    **extra: Any,
) -> httpx.Response:
    items = [
        {"entityId": f"um.item-{i}", "entityType": "USAGE_METER_RATE_CARD", "amount": amount}
        for i, amount in enumerate(amounts)
    ]
    body = {"invoiceId": invoice_id, "mode": mode, "lineItems": items, **extra}
    return await client.post(f"/accounts/{account_id}/credit_applications", json=body)


async def details(client: httpx.AsyncClient, credit_id: str) -> dict[str, Any]:
    response = await client.get(f"/credits/{credit_id}")
    assert response.status_code == 200, response.text
    return dict(response.json())


def lines(credit: dict[str, Any]) -> list[tuple[str, Any]]:
    return [(t["transactionType"], t["amount"]) for t in credit["transactions"]]


def number_literal(text: str, key: str) -> str:
    """The JSON number written for `key`, exactly as the server wrote it."""
    found = re.search(rf'"{key}"\s*:\s*(-?[0-9][0-9.eE+-]*)', text)
    assert found, f"no number for {key} in {text}"
    return found.group(1)


def credit_as_seen(body: dict[str, Any]) -> dict[str, Any]:
    """What a reference model's `credit_view` describes, read off a credit's details."""
    return {
        "status": body["status"],
        "creditAmount": body["creditAmount"],
        "consumedAmount": body["consumedAmount"],
        "holdAmount": body["holdAmount"],
        "transactions": [
            (t["transactionType"], t["amount"], t["invoiceId"], t["entityId"])
            for t in body["transactions"]
        ],
    }
