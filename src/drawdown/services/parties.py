"""Customers and their accounts. Ids are the caller's, unique within an organization."""

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Row
from sqlalchemy.ext.asyncio import AsyncConnection

from drawdown.errors import Conflict, NotFound
from drawdown.ledger.lifecycle import AccountUpdate
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
    taken = await parties.find_customer(conn, org_seq, body["id"], archived=True)
    if taken is not None:
        raise Conflict(_taken("a customer", body["id"], taken.archived_at))
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
    # the customer's row stays shared until the account commits, so a delete of the customer
    # (FOR UPDATE) waits for it, then sees it; one that came first makes this a 404
    customer = await parties.find_customer(conn, org_seq, body["customerId"], lock="share")
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
    taken = await ledger.find_account(conn, org_seq, body["id"], archived=True)
    if taken is not None:
        raise Conflict(_taken("an account", body["id"], taken.archived_at))
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


def _taken(what: str, given_id: str, archived_at: datetime | None) -> str:
    """A refused id: a deleted (archived) one reads as unknown, so say why it is still taken."""
    if archived_at is None:
        return f"{what} with id '{given_id}' already exists; choose another id"
    return (
        f"{what} with id '{given_id}' was deleted, and a deleted id stays taken (its ledger is "
        "kept); choose another id"
    )


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


async def update_customer(
    conn: AsyncConnection, org_seq: int, customer_id: str, fields: dict[str, Any], now: datetime
) -> Row[Any]:
    """Replace what is given (name, primaryEmail, address with its billingAddress)."""
    customer = await parties.find_customer(conn, org_seq, customer_id, lock="no key update")
    if customer is None:
        raise NotFound(f"customer '{customer_id}' was not found")
    values: dict[str, Any] = {"updated_at": max(now, customer.updated_at)}
    if "name" in fields:
        values["name"] = fields["name"]
    if "primaryEmail" in fields:
        values["primary_email"] = fields["primaryEmail"]
    if "address" in fields:
        values["address"] = fields["address"]
        values["billing_address"] = billing_address(fields["address"])
    await parties.update_customer(conn, customer.seq, values)
    return await get_customer(conn, org_seq, customer_id)


async def delete_customer(
    conn: AsyncConnection, org_seq: int, customer_id: str, now: datetime
) -> None:
    """Archive the customer once every account of it is archived; else a 409 naming them."""
    customer = await parties.find_customer(conn, org_seq, customer_id, lock="update")
    if customer is None:
        raise NotFound(f"customer '{customer_id}' was not found")
    remaining = await parties.live_accounts_of(conn, customer.seq)
    if remaining:
        named = ", ".join(f"'{account_id}'" for account_id in remaining[:5])
        more = " and more" if len(remaining) > 5 else ""
        raise Conflict(
            f"customer '{customer_id}' still has accounts {named}{more}; delete them first"
        )
    await parties.update_customer(
        conn, customer.seq, {"archived_at": now, "updated_at": max(now, customer.updated_at)}
    )


def account_update(fields: dict[str, Any]) -> AccountUpdate:
    """A PATCH body (fields given, nulls left out) as the rules take it."""
    return AccountUpdate(
        name=fields.get("name"),
        status=fields.get("status"),
        invoice_currency=fields.get("invoiceCurrency"),
        details={k: v for k, v in fields.items() if k in ACCOUNT_DETAIL_FIELDS},
    )
