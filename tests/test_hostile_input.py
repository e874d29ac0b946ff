"""Hostile and malformed input: every one is a 400 (or 404/413) `{"message"}` that names the
field, changes nothing, and is never a 500, on both engines."""

import base64
import json
from typing import Any

import httpx
import pytest

from drawdown.store.database import Database
from tests.conftest import NOW
from tests.helpers import grant_body, make_account, post_raw
from tests.oracle import assert_books_balance

CUSTOMER = {
    "id": "cust-h",
    "name": "Customer H",
    "primaryEmail": "h@example.test",
    "address": {"country": "US"},
}


def _assert_refused(response: httpx.Response, status: int, *words: str) -> None:
    assert response.status_code == status, response.text
    body = response.json()
    assert body.keys() == {"message"}, body
    for word in words:
        assert word in body["message"], body["message"]


def _token(text: str) -> str:
    return base64.urlsafe_b64encode(text.encode()).decode()


# (body text, the words the 400 must name)
BAD_GRANT_BODIES: list[tuple[str, tuple[str, ...]]] = [
    ("", ("required",)),
    ("   ", ("empty",)),
    ("{", ("not valid JSON",)),
    ("[]", ("JSON object",)),
    ('"text"', ("JSON object",)),
    ("12", ("JSON object",)),
    ("null", ("JSON object",)),
    ("[" * 5000 + "]" * 5000, ("nested",)),
    ('{"a":' * 40 + "1" + "}" * 40, ("nested",)),
    (json.dumps(grant_body(amount=1)).replace("{", '{"priority": 1, ', 1), ("priority", "twice")),
    (json.dumps(grant_body()).replace("100", "1E+1000000"), ("creditAmount",)),
    (json.dumps(grant_body()).replace("100", "1E-1000000"), ("creditAmount",)),
    (json.dumps(grant_body()).replace("100", "9" * 5000), ("out of range",)),
    (json.dumps(grant_body()).replace("100", "NaN"), ("not valid JSON",)),
    (json.dumps(grant_body()).replace("100", "Infinity"), ("not valid JSON",)),
    (json.dumps(grant_body()).replace("100", '"100"'), ("creditAmount",)),
    (json.dumps(grant_body()).replace("100", "true"), ("creditAmount",)),
    (json.dumps(grant_body()).replace("100", "[100]"), ("creditAmount",)),
    (json.dumps(grant_body(priority=10**30)), ("priority",)),
    (json.dumps(grant_body(priority=1.5)), ("priority",)),
    (json.dumps(grant_body(priority="1")), ("priority",)),
    (json.dumps(grant_body(priority=True)), ("priority",)),
    (json.dumps(grant_body(accountId=7)), ("accountId",)),
    (json.dumps(grant_body(accountId="acc/1")), ("accountId",)),
    (json.dumps(grant_body(accountId="acc 1")), ("accountId",)),
    (json.dumps(grant_body(accountId="acc\u0000")), ("accountId", "NUL")),
    (json.dumps(grant_body(accountId="")), ("accountId",)),
    (json.dumps(grant_body(accountId="a" * 51)), ("accountId",)),
    (json.dumps(grant_body(purpose="x\u0000y")), ("purpose", "NUL")),
    (json.dumps(grant_body(idempotencyKey="k/1")), ("idempotencyKey",)),
    (json.dumps(grant_body(idempotencyKey="k\n1")), ("idempotencyKey",)),
    (json.dumps(grant_body(idempotencyKey="k" * 51)), ("idempotencyKey",)),
    (json.dumps(grant_body(effectiveFrom="2026-02-30")), ("effectiveFrom",)),
    (json.dumps(grant_body(effectiveFrom="99999-01-01")), ("effectiveFrom",)),
    (json.dumps(grant_body(effectiveFrom=20260101)), ("effectiveFrom",)),
    (json.dumps(grant_body(unknown=1)), ("unknown",)),
    (json.dumps({"creditRequests": "x"}), ("creditRequests",)),
    (json.dumps({"creditRequests": []}), ("creditRequests",)),
    (json.dumps({"creditRequests": [grant_body()] * 51}), ("creditRequests",)),
    (json.dumps({"creditRequests": [1]}), ("creditRequests[0]",)),
    (json.dumps({"creditRequests": [grant_body(accountId=None)]}), ("accountId",)),
]


@pytest.mark.parametrize(("text", "words"), BAD_GRANT_BODIES)
async def test_malformed_grants_are_400_naming_the_field(
    client: httpx.AsyncClient, text: str, words: tuple[str, ...]
) -> None:
    await make_account(client)
    _assert_refused(await post_raw(client, "/credits", text), 400, *words)
    balance = (await client.get("/accounts/acc-1/credit_balance")).json()
    assert balance["availableBalance"] == 0


async def test_invalid_utf8_and_wrong_content_types_are_400(client: httpx.AsyncClient) -> None:
    await make_account(client)
    raw = json.dumps(grant_body(purpose="PLACEHOLDER")).encode().replace(b"PLACEHOLDER", b"\xff")
    response = await client.post(
        "/credits", content=raw, headers={"Content-Type": "application/json"}
    )
    _assert_refused(response, 400, "not valid JSON")
    for content_type in ("text/plain", "application/x-www-form-urlencoded", "application/xml"):
        response = await client.post(
            "/credits",
            content=json.dumps(grant_body()),
            headers={"Content-Type": content_type},
        )
        _assert_refused(response, 400, "Content-Type: application/json")
    surrogate = json.dumps(grant_body(purpose="PLACEHOLDER")).replace("PLACEHOLDER", "\\ud800")
    _assert_refused(await post_raw(client, "/credits", surrogate), 400)


BAD_CUSTOMER_FIELDS: list[tuple[dict[str, Any], tuple[str, ...]]] = [
    ({"id": "a/b"}, ("id", "without '/', whitespace or control characters")),
    ({"id": "a\tb"}, ("id", "visible characters")),
    ({"id": "\u0085"}, ("id",)),
    ({"name": "Nul\u0000Name"}, ("name", "NUL")),
    ({"address": {"city": "x\u0000"}}, ("address.city", "NUL")),
    ({"address": []}, ("address",)),
    ({"settings": [{"k": "v\u0000"}]}, ("settings[0].k", "NUL")),
    ({"settings": [{"k\u0000": 1}]}, ("settings[0]", "NUL")),
    ({"settings": {"k": 1}}, ("settings",)),
    ({"settings": [{"k": 1e308 * 10}]}, ("settings",)),
    ({"account": {"id": "a b", "name": "Acc"}}, ("account.id", "visible characters")),
    ({"account": {"id": "ok", "name": "Acc", "metadata": {"k": 1}}}, ("metadata",)),
]


@pytest.mark.parametrize(("fields", "words"), BAD_CUSTOMER_FIELDS)
async def test_malformed_customers_are_400_naming_the_field(
    client: httpx.AsyncClient, fields: dict[str, Any], words: tuple[str, ...]
) -> None:
    body = {**CUSTOMER, **fields}
    text = json.dumps(body).replace("Infinity", "1E+999999")
    _assert_refused(await post_raw(client, "/customers", text), 400, *words)
    assert (await client.get("/customers")).json()["data"] == []


async def test_a_customers_settings_are_kept_exactly_as_togais_strings(
    client: httpx.AsyncClient,
) -> None:
    """A setting's value is a string (Togai's CreateEntitySetting; JSON goes in it as text), so
    a decimal in it is kept to the character, and a bare number is refused."""
    value = '{"rate": 0.1000000000000000000000000001, "tiny": 1E-300, "x": [1.50, -0.0]}'
    setting = {"id": "s", "value": value, "namespace": "n", "name": "rates", "dataType": "JSON"}
    created = await client.post(
        "/customers", json={**CUSTOMER, "id": "c-dec", "settings": [setting]}
    )
    assert created.status_code == 201, created.text
    assert created.json()["settings"] == [setting]
    number = {**setting, "value": 0.1}
    refused = await client.post(
        "/customers", json={**CUSTOMER, "id": "c-num", "settings": [number]}
    )
    _assert_refused(refused, 400, "settings[0].value")


@pytest.mark.parametrize(
    ("path", "words"),
    [
        ("/customers?nextToken=" + _token("customers:" + "9" * 30), ("nextToken",)),
        ("/customers?nextToken=" + _token("customers:9223372036854775808"), ("nextToken",)),
        ("/accounts?nextToken=" + _token("accounts:-1"), ("nextToken",)),
        ("/credits?nextToken=" + _token("credits:" + "9" * 30), ("nextToken",)),
        ("/credits?nextToken=%00", ("NUL",)),
        ("/credits?nextToken=!!!", ("nextToken",)),
        ("/customers?pageSize=99999999999999999999999", ("pageSize",)),
        ("/customers?pageSize=0", ("pageSize",)),
        ("/customers?pageSize=-1", ("pageSize",)),
        ("/customers?pageSize=abc", ("pageSize",)),
        ("/customers?pageSize=1&pageSize=2", ("pageSize", "once")),
        ("/customers?limit=5", ("limit", "not a query parameter")),
        ("/credits/c-1?verbose=1", ("verbose", "not a query parameter")),
        ("/accounts/a-1/credit_balance?at=2026-01-01", ("at", "not a query parameter")),
        ("/accounts/a-1?effectiveOn=2026-01-01", ("effectiveOn", "not a query parameter")),
        ("/credits?status=WHATEVER", ("status",)),
        ("/credits?account_id=%00", ("NUL",)),
        ("/customers/%00", ("NUL",)),
        ("/customers/a%00b", ("NUL",)),
        ("/accounts/a%00b/credit_balance", ("NUL",)),
        ("/credits/cr%00", ("NUL",)),
        ("/customers/a%20b", ("customer_id",)),
        ("/accounts/a%09b", ("account_id",)),
        ("/accounts/" + "a" * 51, ("account_id",)),
        ("/credits/" + "c" * 51, ("credit_id",)),
        ("/credits/c%7F", ("credit_id",)),
        ("/accounts/a%0Ab/credit_balance", ("account_id",)),
        ("/accounts/acc-1/credit_applications/inv%20x", ("invoice_id",)),
        ("/accounts/acc-1/credit_applications/" + "i" * 51, ("invoice_id",)),
    ],
)
async def test_malformed_urls_are_400_naming_the_parameter(
    client: httpx.AsyncClient, path: str, words: tuple[str, ...]
) -> None:
    _assert_refused(await client.get(path), 400, *words)


async def test_ids_that_follow_the_rule_work_in_every_path(
    db: Database, client: httpx.AsyncClient, org_name: str
) -> None:
    from drawdown.clock import FixedClock

    for account_id in ("é-ü-∑", "a.b:c@d+e", "x" * 45, "%41"):
        await make_account(client, account_id)
        quoted = account_id.replace("%", "%25")
        granted = await client.post("/credits", json=grant_body(account_id, 3))
        assert granted.status_code == 200, granted.text
        balance = await client.get(f"/accounts/{quoted}/credit_balance")
        assert balance.status_code == 200 and balance.json()["availableBalance"] == 3
        assert (await client.get(f"/accounts/{quoted}")).json()["id"] == account_id
    await assert_books_balance(db, FixedClock(NOW), org_name)


async def test_bad_ids_in_application_bodies_are_400(client: httpx.AsyncClient) -> None:
    await make_account(client)
    item = {"entityId": "e", "entityType": "USAGE_METER_RATE_CARD", "amount": 1}
    for invoice_id, word in (("inv/1", "invoiceId"), ("inv\u0000", "invoiceId"), ("", "invoiceId")):
        body = {"invoiceId": invoice_id, "mode": "HOLD", "lineItems": [item]}
        response = await client.post("/accounts/acc-1/credit_applications", json=body)
        _assert_refused(response, 400, word)
    body = {"invoiceId": "i", "mode": "HOLD", "lineItems": [{**item, "entityId": "e\u0000"}]}
    response = await client.post("/accounts/acc-1/credit_applications", json=body)
    _assert_refused(response, 400, "entityId")
    body = {"invoiceId": "i", "mode": "HOLD", "lineItems": [{**item, "amount": "1E+999999"}]}
    text = json.dumps(body).replace('"1E+999999"', "1E+999999")
    _assert_refused(await post_raw(client, "/accounts/acc-1/credit_applications", text), 400)
