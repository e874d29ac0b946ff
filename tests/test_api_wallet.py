"""The Wallet API and the customer and account lifecycle over HTTP (docs/wallet.md): answers,
refusals and their words, Idempotency-Key, the wallet behind the credits in applications,
currency changes and deletes, tenant isolation and read-only keys on every new route."""

import asyncio
from datetime import timedelta
from decimal import Decimal
from typing import Any

import httpx
import pytest

from drawdown.clock import FixedClock
from drawdown.jobs.purge import purge_events
from drawdown.store.database import Database
from tests.conftest import new_key
from tests.helpers import apply, decimal_json, grant, make_account, post_raw
from tests.oracle import assert_books_balance

D = Decimal
WIDEST = "999999999999999999.9999999999"


async def top_up(
    client: httpx.AsyncClient, amount: Any, account_id: str = "acc-1", key: str | None = None
) -> httpx.Response:
    """The amount goes in as its literal, never through a float."""
    headers = {"Content-Type": "application/json"}
    if key is not None:
        headers["Idempotency-Key"] = key
    return await client.post(
        f"/accounts/{account_id}/wallet_topup",
        content=f'{{"topupAmount": {amount}}}',
        headers=headers,
    )


async def entries(client: httpx.AsyncClient, account_id: str = "acc-1") -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = []
    token = None
    while True:
        params = {"pageSize": 2, **({"nextToken": token} if token else {})}
        page = await client.get(f"/accounts/{account_id}/wallet/entries", params=params)
        assert page.status_code == 200, page.text
        found += decimal_json(page)["data"]
        token = page.json().get("nextToken")
        if not token:
            return found


async def test_the_first_top_up_makes_an_active_wallet_in_effect_from_now(
    client: httpx.AsyncClient,
) -> None:
    await make_account(client, currency="EUR")
    missing = await client.get("/accounts/acc-1/wallet")
    assert missing.status_code == 404
    assert missing.json() == {"message": "account 'acc-1' has no wallet; a top-up creates it"}
    made = await top_up(client, "0.1")
    assert made.status_code == 200, made.text
    body = made.json()
    assert body["id"].startswith("wallet.") and len(body["id"]) == len("wallet.") + 17
    assert body == {
        "id": body["id"],
        "accountId": "acc-1",
        "customerId": "cust-acc-1",
        "balance": 0.1,
        "creditUnit": "EUR",
        "status": "ACTIVE",
        "holdAmount": 0,
        "effectiveFrom": "2026-11-24T12:00:00Z",
        "createdAt": "2026-11-24T12:00:00Z",
        "updatedAt": "2026-11-24T12:00:00Z",
    }
    again = await top_up(client, "0.2")
    assert '"balance":0.3,' in again.text  # exact: 0.1 + 0.2 is 0.3
    assert (await client.get("/accounts/acc-1/wallet")).json() == again.json()
    listed = await entries(client)
    assert [
        (e["transactionType"], e["status"], e["amount"], e["closingBalance"]) for e in listed
    ] == [
        ("CREDITED", "COMPLETED", D("0.1"), D("0.1")),
        ("CREDITED", "COMPLETED", D("0.2"), D("0.3")),
    ]
    assert all(e["walletId"] == body["id"] and e["entityId"] is None for e in listed)


@pytest.mark.parametrize(
    ("amount", "words"),
    [
        ("0", "topupAmount: must be greater than 0"),
        ("-1", "topupAmount: must be greater than 0"),
        ("0.00000000001", "topupAmount: must have at most 10 digits after the decimal point"),
        ("1000000000000000000", "topupAmount: must have at most 18 digits before"),
        ('"5"', "topupAmount: must be a JSON number"),
        ("1E+1000000", "topupAmount:"),
    ],
)
async def test_a_bad_top_up_is_a_400_that_changes_nothing(
    client: httpx.AsyncClient, amount: str, words: str
) -> None:
    await make_account(client)
    refused = await top_up(client, amount)
    assert refused.status_code == 400, refused.text
    assert refused.json()["message"].startswith(words)
    assert (await client.get("/accounts/acc-1/wallet")).status_code == 404


async def test_top_up_refusals_name_the_field(client: httpx.AsyncClient) -> None:
    await make_account(client)
    cases = {
        "": "the request body is required",
        "{}": "topupAmount: is required",
        '{"topupAmount": 1, "more": 2}': "more: is not a field of this request",
    }
    for text, words in cases.items():
        answer = await post_raw(client, "/accounts/acc-1/wallet_topup", text)
        assert answer.status_code == 400, text
        assert answer.json() == {"message": words}
    bad_key = await top_up(client, 1, key="has space")
    assert bad_key.status_code == 400
    assert bad_key.json()["message"].startswith("Idempotency-Key: must be 1 to 50 visible")
    unknown = await top_up(client, 1, account_id="nobody")
    assert unknown.status_code == 404
    assert unknown.json() == {"message": "account 'nobody' was not found"}


async def test_an_idempotency_key_answers_again_and_refuses_another_top_up(
    client: httpx.AsyncClient,
) -> None:
    await make_account(client)
    await make_account(client, "acc-2")
    first = await top_up(client, 10, key="k-1")
    again = await top_up(client, "10.000", key="k-1")
    assert again.status_code == 200 and again.json() == first.json()
    assert len(await entries(client)) == 1
    for amount, account_id in ((11, "acc-1"), (10, "acc-2")):
        other = await top_up(client, amount, account_id=account_id, key="k-1")
        assert other.status_code == 409
        assert other.json() == {
            "message": "Idempotency-Key 'k-1' was already used for a different top-up; use a "
            "new key for a new top-up"
        }
    assert (await client.get("/accounts/acc-2/wallet")).status_code == 404


async def test_an_idempotency_key_is_one_organizations_own(
    client: httpx.AsyncClient, db: Database
) -> None:
    """Another organization's top-up with the same key (even for an account of the same id)
    is its own: it tops up, and this organization's key still answers its own top-up."""
    await make_account(client)
    mine = await top_up(client, 7, key="shared-key")
    client.headers["Authorization"] = f"Bearer {await new_key(db)}"
    await make_account(client)
    theirs = await top_up(client, 9, key="shared-key")
    assert theirs.status_code == 200, theirs.text
    assert theirs.json()["id"] != mine.json()["id"] and decimal_json(theirs)["balance"] == 9
    other = await top_up(client, 7, key="shared-key")
    assert other.status_code == 409
    assert len(await entries(client)) == 1


async def test_the_widest_top_ups_add_up_exactly(client: httpx.AsyncClient) -> None:
    await make_account(client)
    for _ in range(3):
        assert (await top_up(client, WIDEST)).status_code == 200
    wallet = decimal_json(await client.get("/accounts/acc-1/wallet"))
    assert wallet["balance"] == D("2999999999999999999.9999999997")


async def test_update_status_and_effective_from(client: httpx.AsyncClient) -> None:
    await make_account(client)
    none = await client.patch("/accounts/acc-1/wallet", json={"status": "INACTIVE"})
    assert none.status_code == 404 and "has no wallet" in none.json()["message"]
    await top_up(client, 5)
    changed = await client.patch(
        "/accounts/acc-1/wallet",
        json={"status": "INACTIVE", "effectiveFrom": "2026-12-01T00:00:00+01:00"},
    )
    assert changed.status_code == 200, changed.text
    assert changed.json()["status"] == "INACTIVE"
    assert changed.json()["effectiveFrom"] == "2026-11-30T23:00:00Z"
    same = await client.patch("/accounts/acc-1/wallet", json={})
    assert same.json() == changed.json()
    for when in ("0288-04-18T03:48:52.33Z", "9999-12-31T23:59:59.999999Z"):
        early = await client.patch("/accounts/acc-1/wallet", json={"effectiveFrom": when})
        assert early.json()["effectiveFrom"] == when  # the year in four digits, always
    for body, words in (
        ({"status": "ARCHIVED"}, "status:"),
        ({"effectiveFrom": "tomorrow"}, "effectiveFrom:"),
        ({"balance": 1}, "balance: is not a field of this request"),
    ):
        refused = await client.patch("/accounts/acc-1/wallet", json=body)
        assert refused.status_code == 400 and refused.json()["message"].startswith(words)


async def test_applications_use_credits_first_then_the_wallet(
    client: httpx.AsyncClient, db: Database, clock: FixedClock, org_name: str
) -> None:
    await make_account(client)
    credit = await grant(client, amount=30)
    wallet = (await top_up(client, 50)).json()
    held = await apply(client, "inv-1", [20, 25, 40])
    assert held.status_code == 200, held.text
    lines = decimal_json(held)["lineItems"]
    assert [line["allocations"] for line in lines] == [
        [{"creditId": credit["id"], "amount": 20}],
        [{"creditId": credit["id"], "amount": 10}, {"walletId": wallet["id"], "amount": 15}],
        [{"walletId": wallet["id"], "amount": 35}],
    ]
    assert [line["remainingAmount"] for line in lines] == [0, 0, 5]
    now = decimal_json(await client.get("/accounts/acc-1/wallet"))
    assert (now["balance"], now["holdAmount"]) == (0, 50)
    balance = decimal_json(await client.get("/accounts/acc-1/credit_balance"))
    assert balance["runningBalance"] == 0  # credit_balance stays credits only
    [_, hold] = await entries(client)
    assert (hold["transactionType"], hold["status"], hold["entityId"], hold["amount"]) == (
        "DEBITED",
        "ON_HOLD",
        "inv-1",
        50,
    )
    assert hold["closingBalance"] == 0
    captured = await client.post("/accounts/acc-1/credit_applications/inv-1/capture")
    assert captured.status_code == 200
    [_, done] = await entries(client)
    assert (done["id"], done["status"]) == (hold["id"], "COMPLETED")
    out = await apply(client, "inv-2", [1], useWallet=False)
    assert decimal_json(out)["lineItems"][0]["allocations"] == []
    await assert_books_balance(db, clock, org_name)


async def test_release_hides_the_hold_and_deactivation_keeps_it(
    client: httpx.AsyncClient, db: Database, clock: FixedClock, org_name: str
) -> None:
    await make_account(client)
    await top_up(client, 10)
    await apply(client, "inv-1", [4])
    await apply(client, "inv-2", [3])
    await client.patch("/accounts/acc-1/wallet", json={"status": "INACTIVE"})
    nothing = await apply(client, "inv-3", [1])
    assert decimal_json(nothing)["appliedAmount"] == 0
    released = await client.post("/accounts/acc-1/credit_applications/inv-1/release")
    assert released.status_code == 200
    captured = await client.post("/accounts/acc-1/credit_applications/inv-2/capture")
    assert decimal_json(captured)["appliedAmount"] == 3
    wallet = decimal_json(await client.get("/accounts/acc-1/wallet"))
    assert (wallet["balance"], wallet["holdAmount"], wallet["status"]) == (7, 0, "INACTIVE")
    listed = await entries(client)
    assert [(e["entityId"], e["status"], e["closingBalance"]) for e in listed] == [
        (None, "COMPLETED", 10),
        ("inv-2", "COMPLETED", 3),  # written when inv-1's hold of 4 was still there
    ]
    await assert_books_balance(db, clock, org_name)


async def test_a_currency_change_is_refused_once_money_exists(client: httpx.AsyncClient) -> None:
    await make_account(client)
    await make_account(client, "acc-2")
    changed = await client.patch(
        "/accounts/acc-1",
        json={
            "name": "Renamed",
            "invoiceCurrency": "EUR",
            "metadata": {"vat": "x"},
            "tags": ["a"],
            "address": {"line1": "2 Main St"},
        },
    )
    assert changed.status_code == 200, changed.text
    body = changed.json()
    assert (body["name"], body["invoiceCurrency"], body["metadata"], body["tags"]) == (
        "Renamed",
        "EUR",
        {"vat": "x"},
        ["a"],
    )
    assert (await client.get("/accounts/acc-1")).json() == body
    cleared = await client.patch("/accounts/acc-1", json={"metadata": {}, "status": "DRAFT"})
    assert (cleared.json()["metadata"], cleared.json()["status"]) == ({}, "DRAFT")
    await grant(client, "acc-1", 1)
    await top_up(client, 1, account_id="acc-2")
    for account_id, what in (("acc-1", "credits"), ("acc-2", "a wallet")):
        refused = await client.patch(f"/accounts/{account_id}", json={"invoiceCurrency": "GBP"})
        assert refused.status_code == 409
        assert refused.json()["message"] == (
            f"invoiceCurrency cannot change from {'EUR' if what == 'credits' else 'USD'} to GBP: "
            f"account '{account_id}' has {what} in {'EUR' if what == 'credits' else 'USD'}; "
            "create a new account to invoice in GBP"
        )
    same = await client.patch("/accounts/acc-1", json={"invoiceCurrency": "EUR", "name": "Again"})
    assert same.status_code == 200
    for body_, words in (
        ({"invoiceCurrency": "eur"}, "invoiceCurrency:"),
        ({"status": "ARCHIVED"}, "status:"),
        ({"id": "x"}, "id: is not a field"),
        ({"name": "ab"}, "name:"),
    ):
        bad = await client.patch("/accounts/acc-1", json=body_)
        assert bad.status_code == 400 and bad.json()["message"].startswith(words), bad.text


async def test_a_delete_is_refused_while_money_remains_then_archives(
    client: httpx.AsyncClient, db: Database, clock: FixedClock, org_name: str
) -> None:
    await make_account(client)
    credit = await grant(client, amount=5)
    await top_up(client, 2)
    await apply(client, "inv-1", [6])
    refused = await client.delete("/accounts/acc-1")
    assert refused.status_code == 409
    assert refused.json() == {
        "message": "account 'acc-1' still holds money and was not deleted: credits with 5 left "
        "(5 of it held): void or spend them; a wallet with a balance of 1 and 1 held: spend its "
        "balance with a DEBIT application; held applications for invoices 'inv-1': capture or "
        "release them"
    }
    await client.post("/accounts/acc-1/credit_applications/inv-1/capture")
    await apply(client, "inv-2", [1], mode="DEBIT")
    customer_refused = await client.delete("/customers/cust-acc-1")
    assert customer_refused.status_code == 409
    assert customer_refused.json() == {
        "message": "customer 'cust-acc-1' still has accounts 'acc-1'; delete them first"
    }
    deleted = await client.delete("/accounts/acc-1")
    assert deleted.status_code == 200 and deleted.json() == {"success": True}
    for path in (
        "/accounts/acc-1",
        "/accounts/acc-1/credit_balance",
        "/accounts/acc-1/wallet",
        "/accounts/acc-1/wallet/entries",
        "/accounts/acc-1/credit_applications",
        "/accounts/acc-1/usage",
    ):
        gone = await client.get(path)
        assert gone.status_code == 404, path
        assert gone.json() == {"message": "account 'acc-1' was not found"}, path
    for method, path, body in (
        ("POST", "/accounts/acc-1/wallet_topup", {"topupAmount": 1}),
        ("PATCH", "/accounts/acc-1", {"name": "Back again"}),
        ("DELETE", "/accounts/acc-1", None),
        ("POST", "/credits", {**_grant("acc-1")}),
        ("POST", "/accounts/acc-1/credit_applications/inv-1/capture", None),
    ):
        answer = await client.request(method, path, json=body)
        assert answer.status_code == 404, (method, path, answer.text)
    assert (await client.get(f"/credits/{credit['id']}")).status_code == 200  # ledger kept
    taken = await client.post(
        "/accounts", json={"id": "acc-1", "name": "Again", "customerId": "cust-acc-1"}
    )
    assert taken.status_code == 409
    assert taken.json() == {
        "message": "an account with id 'acc-1' was deleted, and a deleted id stays taken (its "
        "ledger is kept); choose another id"
    }
    assert (await client.get("/accounts")).json()["data"] == []
    assert (await client.delete("/customers/cust-acc-1")).json() == {"success": True}
    assert (await client.get("/customers/cust-acc-1")).status_code == 404
    assert (await client.get("/customers")).json()["data"] == []
    assert (await client.delete("/customers/cust-acc-1")).status_code == 404
    no_account = await client.post(
        "/accounts", json={"id": "acc-9", "name": "Nine", "customerId": "cust-acc-1"}
    )
    assert no_account.status_code == 404
    again = await client.post(
        "/customers",
        json={"id": "cust-acc-1", "name": "Again", "primaryEmail": "a@b.test", "address": {}},
    )
    assert again.status_code == 409
    assert again.json() == {
        "message": "a customer with id 'cust-acc-1' was deleted, and a deleted id stays taken "
        "(its ledger is kept); choose another id"
    }
    await assert_books_balance(db, clock, org_name)


def _grant(account_id: str) -> dict[str, Any]:
    return {
        "accountId": account_id,
        "purpose": "PREPAID_CREDIT",
        "effectiveFrom": "2026-01-01",
        "creditAmount": 1,
        "priority": 1,
    }


async def test_update_customer(client: httpx.AsyncClient, clock: FixedClock) -> None:
    await make_account(client)
    clock.advance(timedelta(seconds=5))
    changed = await client.patch(
        "/customers/cust-acc-1",
        json={"name": "New Name", "address": {"line1": "9 High St", "city": "Bath"}},
    )
    assert changed.status_code == 200, changed.text
    body = changed.json()
    assert (body["name"], body["billingAddress"], body["primaryEmail"]) == (
        "New Name",
        "9 High St, Bath",
        "billing@example.test",
    )
    assert body["updatedAt"] == "2026-11-24T12:00:05Z" and body["createdAt"] != body["updatedAt"]
    assert (await client.get("/customers/cust-acc-1")).json() == body
    assert (await client.patch("/customers/nobody", json={})).status_code == 404
    bad = await client.patch("/customers/cust-acc-1", json={"primaryEmail": 5})
    assert bad.status_code == 400 and bad.json()["message"].startswith("primaryEmail:")


async def test_every_new_route_keeps_tenants_apart_and_read_only_keys_out(
    client: httpx.AsyncClient, db: Database, org_name: str
) -> None:
    await make_account(client)
    await top_up(client, 5)
    stranger = {"Authorization": f"Bearer {await new_key(db)}"}
    reader = {"Authorization": f"Bearer {await new_key(db, read_only=True, org=org_name)}"}
    writes = [
        ("POST", "/accounts/acc-1/wallet_topup", {"topupAmount": 1}),
        ("PATCH", "/accounts/acc-1/wallet", {"status": "INACTIVE"}),
        ("PATCH", "/customers/cust-acc-1", {"name": "Taken over"}),
        ("PATCH", "/accounts/acc-1", {"name": "Taken over"}),
        ("DELETE", "/accounts/acc-1", None),
        ("DELETE", "/customers/cust-acc-1", None),
    ]
    reads = [
        ("GET", "/accounts/acc-1/wallet", None),
        ("GET", "/accounts/acc-1/wallet/entries", None),
    ]
    for method, path, body in writes + reads:
        foreign = await client.request(method, path, json=body, headers=stranger)
        assert foreign.status_code == 404, (method, path)
        assert set(foreign.json()) == {"message"}
    for method, path, body in writes:
        refused = await client.request(method, path, json=body, headers=reader)
        assert refused.status_code == 403, (method, path)
        assert refused.json() == {
            "message": "this API key is read-only; use a read-write key to change anything"
        }
    for method, path, _ in reads:
        assert (await client.request(method, path, headers=reader)).status_code == 200
    for method, path, body in writes + reads:
        anonymous = await client.request(method, path, json=body, headers={"Authorization": ""})
        assert anonymous.status_code == 401
    wallet = decimal_json(await client.get("/accounts/acc-1/wallet"))
    assert (wallet["balance"], wallet["status"]) == (5, "ACTIVE")
    assert (await client.get("/customers/cust-acc-1")).json()["name"] == "Customer One"


async def test_entries_page_through_once_each_and_refuse_a_foreign_token(
    client: httpx.AsyncClient,
) -> None:
    await make_account(client)
    for n in range(1, 6):
        await top_up(client, n)
    listed = await entries(client)
    assert [e["amount"] for e in listed] == [1, 2, 3, 4, 5]
    assert [e["closingBalance"] for e in listed] == [1, 3, 6, 10, 15]
    bad = await client.get("/accounts/acc-1/wallet/entries", params={"nextToken": "nope"})
    assert bad.status_code == 400
    too_big = await client.get("/accounts/acc-1/wallet/entries", params={"pageSize": 51})
    assert too_big.status_code == 400


async def test_usage_draws_the_wallet_after_the_credits_and_survives_the_clean_up(
    client: httpx.AsyncClient, db: Database, clock: FixedClock, org_name: str
) -> None:
    await make_account(client)
    meter = {
        "id": "um.tokens",
        "name": "Tokens",
        "eventSchemaName": "llm_call",
        "aggregation": "SUM",
        "attribute": "tokens",
        "creditRate": {"credits": 1, "perQuantity": 1},
    }
    assert (await client.post("/usage_meters", json=meter)).status_code == 201
    credit = await grant(client, amount=4)
    wallet = (await top_up(client, "5.5")).json()
    events = [
        {
            "schemaName": "llm_call",
            "id": f"e-{n}",
            "timestamp": f"2026-11-24T11:0{n}:00Z",
            "accountId": "acc-1",
            "attributes": [{"name": "tokens", "value": "3"}],
        }
        for n in (1, 2, 3, 4)
    ]
    assert (await client.post("/ingestBatch", json={"events": events})).status_code == 202
    await client._transport.app.state.applier.drain()  # type: ignore[attr-defined]
    usage = decimal_json(await client.get("/accounts/acc-1/usage"))
    [totals] = usage["meters"]
    assert (totals["paidByCredits"], totals["paidByWallet"], totals["uncovered"]) == (
        4,
        D("5.5"),
        D("2.5"),
    )
    second = decimal_json(await client.get("/usage/events/e-2"))
    assert second["meters"][0]["allocations"] == [
        {"creditId": credit["id"], "amount": 1},
        {"walletId": wallet["id"], "amount": 2},
    ]
    [_, spent] = await entries(client)  # one entry for the meter's batch
    assert (spent["entityId"], spent["amount"], spent["closingBalance"]) == (
        "um.tokens",
        D("5.5"),
        0,
    )
    await assert_books_balance(db, clock, org_name)
    clock.advance(timedelta(days=60))
    assert await purge_events(db, clock, 45) >= 4  # the session's other tests' too
    assert (await client.get("/usage/events/e-1")).status_code == 404
    await assert_books_balance(db, clock, org_name)
    assert decimal_json(await client.get("/accounts/acc-1/usage"))["meters"] == usage["meters"]


async def test_a_delete_racing_a_top_up_never_archives_money(
    client: httpx.AsyncClient, db: Database, clock: FixedClock, org_name: str
) -> None:
    """Either the top-up comes first and the delete is refused (409), or the account is
    archived first and the top-up finds no account (404): money never lands in an archive."""
    rounds = 12
    for n in range(rounds):
        await make_account(client, f"acc-{n}")
    outcomes = await asyncio.gather(
        *(
            asyncio.gather(
                top_up(client, "0.0000000001", account_id=f"acc-{n}", key=f"k-{n}"),
                client.delete(f"/accounts/acc-{n}"),
            )
            for n in range(rounds)
        )
    )
    for topped, deleted in outcomes:
        assert (topped.status_code, deleted.status_code) in ((200, 409), (404, 200)), (
            topped.text,
            deleted.text,
        )
    await assert_books_balance(db, clock, org_name)
