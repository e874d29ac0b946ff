"""Customers and their accounts. Ids are the caller's, unique within an organization."""

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Row
from sqlalchemy.ext.asyncio import AsyncConnection

from drawdown.errors import Conflict, NotFound
from drawdown.ledger.records import AccountRecord
from drawdown.store import ledger, parties

ACCOUNT_DETAIL_FIELDS = (
    "primaryEmail",
    "address",
    "netTermDays",
    "metadata",
    "tags",
    "settings",
    "billingInformation",
)
ADDRESS_PARTS = ("line1", "line2", "city", "state", "postalCode", "country")


@dataclass(frozen=True)
class CustomerWithAccount:
    customer: Row[Any]
    account: AccountRecord | None


def billing_address(address: dict[str, Any]) -> str:
    return ", ".join(str(address[part]) for part in ADDRESS_PARTS if address.get(part))


async def create_customer(
    conn: AsyncConnection, org_seq: int, body: dict[str, Any], now: datetime
) -> CustomerWithAccount:
    if await parties.find_customer(conn, org_seq, body["id"]) is not None:
        raise Conflict(f"a customer with id '{body['id']}' already exists")
    address = body["address"]
    customer_seq = await parties.insert_customer(
        conn,
        {
            "org_seq": org_seq,
            "id": body["id"],
            "name": body["name"],
            "primary_email": body["primaryEmail"],
            "billing_address": billing_address(address),
            "address": address,
            "settings": body.get("settings"),
            "status": "ACTIVE",
            "created_at": now,
            "updated_at": now,
        },
    )
    customer = await parties.find_customer(conn, org_seq, body["id"])
    assert customer is not None and customer.seq == customer_seq
    account = None
    if body.get("account") is not None:
        account = await _insert_account(conn, org_seq, customer, body["account"], now)
    return CustomerWithAccount(customer, account)


async def create_account(
    conn: AsyncConnection, org_seq: int, body: dict[str, Any], now: datetime
) -> AccountRecord:
    customer = await parties.find_customer(conn, org_seq, body["customerId"])
    if customer is None:
        raise NotFound(f"customer '{body['customerId']}' was not found")
    return await _insert_account(conn, org_seq, customer, body, now)


async def _insert_account(
    conn: AsyncConnection,
    org_seq: int,
    customer: Row[Any],
    body: dict[str, Any],
    now: datetime,
) -> AccountRecord:
    if await ledger.find_account(conn, org_seq, body["id"]) is not None:
        raise Conflict(f"an account with id '{body['id']}' already exists")
    await parties.insert_account(
        conn,
        {
            "org_seq": org_seq,
            "id": body["id"],
            "customer_seq": customer.seq,
            "customer_id": customer.id,
            "name": body["name"],
            "invoice_currency": body.get("invoiceCurrency") or "USD",
            "status": body.get("status") or "ACTIVE",
            "details": {k: body[k] for k in ACCOUNT_DETAIL_FIELDS if body.get(k) is not None},
            "created_at": now,
            "updated_at": now,
        },
        now,
    )
    account = await ledger.find_account(conn, org_seq, body["id"])
    assert account is not None
    return account


async def get_customer(conn: AsyncConnection, org_seq: int, customer_id: str) -> Row[Any]:
    customer = await parties.find_customer(conn, org_seq, customer_id)
    if customer is None:
        raise NotFound(f"customer '{customer_id}' was not found")
    return customer


async def get_account(conn: AsyncConnection, org_seq: int, account_id: str) -> AccountRecord:
    account = await ledger.find_account(conn, org_seq, account_id)
    if account is None:
        raise NotFound(f"account '{account_id}' was not found")
    return account
