"""Keys, tenants and the error shape."""

import httpx

from drawdown.clock import FixedClock
from drawdown.store.database import Database
from tests.conftest import new_key
from tests.helpers import grant, grant_body, make_account, post_raw


async def test_no_key_or_unknown_key_is_401(client: httpx.AsyncClient) -> None:
    bare = await client.get("/credits", headers={"Authorization": ""})
    assert bare.status_code == 401
    assert "Authorization" in bare.json()["message"]
    wrong = await client.get("/credits", headers={"Authorization": "Bearer dd_nope"})
    assert wrong.status_code == 401
    assert wrong.json() == {"message": "the API key is not valid"}
    basic = await client.get("/credits", headers={"Authorization": "Basic abc"})
    assert basic.status_code == 401


async def test_read_only_key_reads_but_cannot_write(
    client: httpx.AsyncClient, db: Database, org_name: str
) -> None:
    await make_account(client)
    credit = await grant(client)
    reader = {"Authorization": f"Bearer {await new_key(db, read_only=True, org=org_name)}"}
    assert (await client.get(f"/credits/{credit['id']}", headers=reader)).status_code == 200
    refused = await client.post("/credits", json=grant_body(), headers=reader)
    assert refused.status_code == 403
    assert "read-only" in refused.json()["message"]
    void = await client.post(f"/credits/{credit['id']}/void", headers=reader)
    assert void.status_code == 403
    assert len((await client.get("/credits")).json()["data"]) == 1


async def test_another_organizations_ids_answer_404_like_unknown_ones(
    client: httpx.AsyncClient, db: Database
) -> None:
    await make_account(client, "shared-id")
    credit = await grant(client, "shared-id")
    stranger = {"Authorization": f"Bearer {await new_key(db)}"}
    for path in (
        f"/credits/{credit['id']}",
        "/accounts/shared-id",
        "/customers/cust-shared-id",
        "/accounts/shared-id/credit_balance",
    ):
        response = await client.get(path, headers=stranger)
        assert response.status_code == 404, path
    void = await client.post(f"/credits/{credit['id']}/void", headers=stranger)
    assert void.status_code == 404
    assert void.json() == (await client.get("/credits/cred.x.y", headers=stranger)).json() | {
        "message": f"credit '{credit['id']}' was not found"
    }
    grant_there = await client.post("/credits", json=grant_body("shared-id"), headers=stranger)
    assert grant_there.status_code == 404
    listed = await client.get("/credits", headers=stranger)
    assert listed.json()["data"] == []
    assert (await client.get(f"/credits/{credit['id']}")).json()["status"] == "ACTIVE"


async def test_the_same_ids_live_side_by_side_in_two_organizations(
    client: httpx.AsyncClient, db: Database
) -> None:
    await make_account(client, "acc-1")
    other = {"Authorization": f"Bearer {await new_key(db)}"}
    response = await client.post(
        "/customers",
        headers=other,
        json={
            "id": "cust-acc-1",
            "name": "Other Org Customer",
            "primaryEmail": "x@example.test",
            "address": {},
            "account": {"id": "acc-1", "name": "Other account"},
        },
    )
    assert response.status_code == 201
    key = {"idempotencyKey": "same-key"}
    await grant(client, "acc-1", **key)
    theirs = await client.post("/credits", json=grant_body("acc-1", amount=7, **key), headers=other)
    assert theirs.status_code == 200


async def test_every_error_is_a_message_alone(client: httpx.AsyncClient) -> None:
    cases = [
        await post_raw(client, "/credits", "{not json"),
        await post_raw(client, "/credits", "[]"),
        await client.get("/no/such/route"),
        await client.delete("/credits"),
        await client.post("/credits", json={"creditRequests": []}),
        await client.post("/credits", json=grant_body(priority="high")),
        await client.post("/credits", json=grant_body(effectiveFrom="yesterday")),
        await client.post("/credits", json=grant_body(surprise=1)),
        await client.post("/customers", json={"id": "x"}),
        await client.post("/credits", content=b"accountId=1"),
    ]
    statuses = [r.status_code for r in cases]
    assert statuses == [400, 400, 404, 405, 400, 400, 400, 400, 400, 400]
    for response in cases:
        body = response.json()
        assert set(body) == {"message"}, body
        assert 0 < len(body["message"]) <= 500
    assert cases[5].json()["message"].startswith("priority:")
    assert cases[6].json()["message"] == "effectiveFrom: must be a date written as YYYY-MM-DD"
    assert cases[7].json()["message"] == "surprise: is not a field of this request"


async def test_a_batch_error_names_the_item(client: httpx.AsyncClient) -> None:
    await make_account(client)
    body = {"creditRequests": [grant_body(), grant_body(amount=-1)]}
    response = await client.post("/credits", json=body)
    assert response.status_code == 400
    assert response.json()["message"].startswith("creditRequests[1].creditAmount:")


async def test_health_and_ready(client: httpx.AsyncClient, clock: FixedClock) -> None:
    assert (await client.get("/health", headers={"Authorization": ""})).status_code == 200
    assert (await client.get("/ready")).status_code == 200


async def test_openapi_uses_togais_operation_ids(client: httpx.AsyncClient) -> None:
    spec = (await client.get("/openapi.json")).json()
    operations = {
        op["operationId"]: (method, path)
        for path, item in spec["paths"].items()
        for method, op in item.items()
    }
    expected = {
        "createCredit": ("post", "/credits"),
        "getCreditDetails": ("get", "/credits/{credit_id}"),
        "listCredits": ("get", "/credits"),
        "voidCredit": ("post", "/credits/{credit_id}/void"),
        "creditBalanceForAccount": ("get", "/accounts/{account_id}/credit_balance"),
        "createCustomer": ("post", "/customers"),
        "getCustomer": ("get", "/customers/{customer_id}"),
        "createAccount": ("post", "/accounts"),
        "getAccount": ("get", "/accounts/{account_id}"),
        "updateCustomer": ("patch", "/customers/{customer_id}"),
        "deleteCustomer": ("delete", "/customers/{customer_id}"),
        "updateAccount": ("patch", "/accounts/{account_id}"),
        "deleteAccount": ("delete", "/accounts/{account_id}"),
        "topUpWalletForAccount": ("post", "/accounts/{account_id}/wallet_topup"),
        "walletBalanceForAccount": ("get", "/accounts/{account_id}/wallet"),
        "updateWalletForAccount": ("patch", "/accounts/{account_id}/wallet"),
        "walletEntriesForAccount": ("get", "/accounts/{account_id}/wallet/entries"),
    }
    for operation_id, where in expected.items():
        assert operations[operation_id] == where
    schemas = spec["components"]["schemas"]
    details = schemas["CreditDetailsResponse"]
    assert details["properties"]["creditAmount"]["type"] == "number"
    assert details["properties"]["transactions"]["type"] == "array"
    assert schemas["ErrorResponse"]["properties"]["message"]["maxLength"] == 500
    assert (await client.get("/docs")).status_code == 200
