"""/openapi.json tells the truth: real response schemas that the rendered answers validate
against, Togai's operationIds, the bearer scheme, exactly the statuses each route sends, the
request limits; every 405 lists every allowed method; /docs works with no network."""

import json
import re
from decimal import Decimal
from functools import cache
from html.parser import HTMLParser
from typing import Any

import httpx
import jsonschema_rs
import pytest
import togai_client.api as togai_api
from pydantic import TypeAdapter

from drawdown.api.fields import Identifier
from drawdown.api.schemas import InvoiceIdentifier
from drawdown.api.usage_schemas import EventIdentifier, MeterIdentifier
from drawdown.services.webhook_settings import WebhookSettings
from tests.helpers import grant_body, make_account, post_raw
from tests.webhook_receiver import receiver

READ = {"400", "401", "429", "503"}
WRITE = READ | {"403", "413"}
# exactly what each operation can answer besides its success
EXPECTED_ERRORS = {
    "health": set(),
    "ready": {"503"},
    "createCredit": WRITE | {"404", "409"},
    "listCredits": READ,
    "getCreditDetails": READ | {"404"},
    "voidCredit": WRITE | {"404"},
    "creditBalanceForAccount": READ | {"404"},
    "createCustomer": WRITE | {"409"},
    "getCustomers": READ,
    "getCustomer": READ | {"404"},
    "createAccount": WRITE | {"404", "409"},
    "getAccounts": READ,
    "getAccount": READ | {"404"},
    "applyCredits": WRITE | {"404", "409"},
    "listCreditApplications": READ | {"404"},
    "getCreditApplication": READ | {"404"},
    "captureCreditApplication": WRITE | {"404", "409"},
    "releaseCreditApplication": WRITE | {"404", "409"},
    "ingest": WRITE | {"404", "409"},
    "ingestBatch": WRITE,
    "createUsageMeter": WRITE | {"409"},
    "listUsageMeters": READ,
    "getUsageMeter": READ | {"404"},
    "updateUsageMeterRate": WRITE | {"404"},
    "deactivateUsageMeter": WRITE | {"404"},
    "activateUsageMeter": WRITE | {"404"},
    "getAccountUsage": READ | {"404"},
    "listAccountUsageEvents": READ | {"404"},
    "getUsageEvent": READ | {"404"},
    "createWebhookEndpoint": WRITE | {"409"},
    "listWebhookEndpoints": READ,
    "getWebhookEndpoint": READ | {"404"},
    "updateWebhookEndpoint": WRITE | {"404"},
    "deleteWebhookEndpoint": WRITE | {"404"},
    "rotateWebhookSecret": WRITE | {"404"},
    "listWebhookDeliveries": READ | {"404"},
    "replayWebhookEvents": WRITE | {"404", "409"},
    "listEvents": READ | {"404"},
    "putBalanceAlerts": WRITE,
    "getBalanceAlerts": READ,
    "putAccountBalanceAlerts": WRITE | {"404"},
    "getAccountBalanceAlerts": READ | {"404"},
    "topUpWalletForAccount": WRITE | {"404", "409"},
    "walletBalanceForAccount": READ | {"404"},
    "updateWalletForAccount": WRITE | {"404"},
    "walletEntriesForAccount": READ | {"404"},
    "updateCustomer": WRITE | {"404"},
    "deleteCustomer": WRITE | {"404", "409"},
    "updateAccount": WRITE | {"404", "409"},
    "deleteAccount": WRITE | {"404", "409"},
}
# what an operation answers when all went well, when it is not 200 or 201
SUCCESSES = {
    "ingest": {"202"},
    "ingestBatch": {"202", "207"},
    "deleteWebhookEndpoint": {"204"},
}
# successes that carry no body
NO_CONTENT = {"deleteWebhookEndpoint"}
TOGAI_TAGS = {
    "Credits": "CreditsApi",
    "Customers": "CustomersApi",
    "Accounts": "AccountsApi",
    "Event Ingestion": "EventIngestionApi",
    "Wallet": "WalletApi",
}


@pytest.fixture
async def document(client: httpx.AsyncClient) -> dict[str, Any]:
    response = await client.get("/openapi.json")
    assert response.status_code == 200
    return dict(response.json())


def operations(document: dict[str, Any]) -> list[tuple[str, str, dict[str, Any]]]:
    return [
        (path, method, operation)
        for path, item in document["paths"].items()
        for method, operation in item.items()
    ]


def snake(name: str) -> str:
    return re.sub(r"(?<!^)(?=[A-Z])", "_", name).lower()


async def test_every_operation_declares_the_schema_of_its_success(
    document: dict[str, Any],
) -> None:
    assert {op["operationId"] for _, _, op in operations(document)} == set(EXPECTED_ERRORS)
    for path, method, operation in operations(document):
        success = {s for s in operation["responses"] if s.startswith("2")}
        if operation["operationId"] in SUCCESSES:
            assert success == SUCCESSES[operation["operationId"]], (path, method)
        else:
            assert len(success) == 1, (path, method)
        if operation["operationId"] in NO_CONTENT:
            assert "content" not in operation["responses"]["204"], (path, method)
            continue
        for status in success:
            schema = operation["responses"][status]["content"]["application/json"]["schema"]
            refs = [schema] if "$ref" in schema else schema.get("anyOf", [])
            assert refs and all("$ref" in ref for ref in refs), (path, method, schema)


async def test_togai_operations_keep_togai_operation_ids(document: dict[str, Any]) -> None:
    """Each Togai operation is found, by its operationId, in the official client, on the same
    path and method."""
    checked = 0
    for path, method, operation in operations(document):
        tag = operation["tags"][0]
        if tag not in TOGAI_TAGS:
            continue
        api = getattr(togai_api, TOGAI_TAGS[tag])
        serializer = getattr(api, f"_{snake(operation['operationId'])}_serialize", None)
        assert serializer is not None, f"{operation['operationId']} is not Togai's"
        source = __import__("inspect").getsource(serializer)
        assert f"method='{method.upper()}'" in source, operation["operationId"]
        assert f"resource_path='{path}'" in source, operation["operationId"]
        checked += 1
    assert checked == 21


async def test_bearer_scheme_on_every_route_behind_a_key(document: dict[str, Any]) -> None:
    scheme = document["components"]["securitySchemes"]["bearerAuth"]
    assert (scheme["type"], scheme["scheme"]) == ("http", "bearer")
    for path, method, operation in operations(document):
        if path in ("/health", "/ready"):
            assert "security" not in operation
        else:
            assert operation["security"] == [{"bearerAuth": []}], (path, method)


async def test_each_operation_lists_exactly_the_statuses_it_answers(
    document: dict[str, Any],
) -> None:
    assert "HTTPValidationError" not in document["components"]["schemas"]
    for _, _, operation in operations(document):
        responses = operation["responses"]
        errors = {status for status in responses if not status.startswith("2")}
        assert errors == EXPECTED_ERRORS[operation["operationId"]], operation["operationId"]
        for status in errors:
            schema = responses[status]["content"]["application/json"]["schema"]
            assert schema == {"$ref": "#/components/schemas/ErrorResponse"}
            headers = responses[status].get("headers", {})
            assert ("Retry-After" in headers) == (status in ("429", "503")), status


async def test_request_limits_are_declared(document: dict[str, Any]) -> None:
    schemas = document["components"]["schemas"]
    credit_amount = schemas["CreditRequest"]["properties"]["creditAmount"]
    assert credit_amount["exclusiveMinimum"] == 0
    assert credit_amount["exclusiveMaximum"] == 10**18
    assert credit_amount["multipleOf"] == 1e-10
    entity_ids = schemas["CreditRequest"]["properties"]["applicableEntityIds"]["anyOf"][0]
    assert (entity_ids["uniqueItems"], entity_ids["maxItems"]) == (True, 100)
    line_amount = schemas["LineItemRequest"]["properties"]["amount"]
    assert (line_amount["minimum"], line_amount["exclusiveMaximum"]) == (0, 10**18)

    def declared(schema: dict[str, Any]) -> dict[str, Any]:
        keys = ("type", "minLength", "maxLength", "pattern")
        return {k: schema[k] for k in keys if k in schema}

    identifier = declared(TypeAdapter(Identifier).json_schema())
    invoice = declared(TypeAdapter(InvoiceIdentifier).json_schema())
    assert identifier["maxLength"] == 50
    path_ids = {
        "invoice_id": invoice,
        "meter_id": declared(TypeAdapter(MeterIdentifier).json_schema()),
        "event_id": declared(TypeAdapter(EventIdentifier).json_schema()),
    }
    assert path_ids["event_id"]["maxLength"] == 512
    for path, method, operation in operations(document):
        for parameter in operation.get("parameters", []):
            name, schema = parameter["name"], parameter["schema"]
            if parameter["in"] == "path":
                expected = path_ids.get(name, identifier)
                assert declared(schema) == expected, (path, method, name)
            if name == "pageSize":
                assert (schema["minimum"], schema["maximum"], schema["default"]) == (1, 50, 50)
            if name in ("account_id", "id") and parameter["in"] == "query":
                assert declared(schema["anyOf"][0]) == identifier


def fill(path: str) -> str:
    return re.sub(r"\{[^}]+\}", "x", path)


async def test_every_405_allows_every_method_of_the_path(
    client: httpx.AsyncClient, document: dict[str, Any]
) -> None:
    """`Allow` on a 405 names exactly the methods of that path that do not answer 405."""
    tried = 0
    for path, item in document["paths"].items():
        answers = {
            method: await client.request(method, fill(path))
            for method in ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS")
        }
        working = {method for method, answer in answers.items() if answer.status_code != 405}
        assert {m.upper() for m in item} <= working, path
        for method, answer in answers.items():
            if method in working:
                continue
            assert set(answer.headers["allow"].split(", ")) == working, (method, path)
            if method != "HEAD":
                assert list(answer.json()) == ["message"]
            tried += 1
    assert tried > 50


class _Links(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.urls: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.urls += [value for name, value in attrs if name in ("src", "href") and value]


@pytest.mark.parametrize("page", ["/docs", "/redoc"])
async def test_docs_load_every_asset_from_the_app(client: httpx.AsyncClient, page: str) -> None:
    response = await client.get(page)
    assert response.status_code == 200
    html = response.text
    links = _Links()
    links.feed(html)
    inline = re.findall(r"""(?:url|spec-url)\s*[:=]\s*['"]([^'"]+)['"]""", html)
    urls = links.urls + inline
    assert urls, html
    assert not re.search(r"https?://|//cdn|jsdelivr|unpkg", html), html
    assert "/openapi.json" in urls
    sizes = {}
    for url in urls:
        asset = await client.get(url)
        assert asset.status_code == 200, url
        sizes[url] = len(asset.content)
    scripts = [url for url in urls if url.endswith(".js")]
    assert scripts and all(sizes[url] > 100_000 for url in scripts), sizes
    if page == "/docs":
        assert '"persistAuthorization": true' in html


# Every answer validates against the document ---------------------------------------------------


@cache
def _validator(document_text: str, path: str, method: str, status: str) -> Any:
    document = json.loads(document_text)
    responses = document["paths"][path][method]["responses"]
    assert status in responses, f"{method.upper()} {path} answered an undocumented {status}"
    schema = responses[status]["content"]["application/json"]["schema"]
    root = {"$schema": "https://json-schema.org/draft/2020-12/schema", **schema}
    root["components"] = document["components"]
    return jsonschema_rs.Draft202012Validator(root, validate_formats=True)


class Conformance:
    def __init__(self, client: httpx.AsyncClient, document: dict[str, Any]) -> None:
        self.client = client
        self.document_text = json.dumps(document)
        self.checked: set[tuple[str, str, int]] = set()

    async def call(
        self, method: str, template: str, *, path: str | None = None, **kwargs: Any
    ) -> httpx.Response:
        response = await self.client.request(method, path or template, **kwargs)
        self.check(method, template, response)
        return response

    def check(self, method: str, template: str, response: httpx.Response) -> None:
        status = str(response.status_code)
        if status == "204":
            responses = json.loads(self.document_text)["paths"][template][method.lower()]
            assert status in responses["responses"], (method, template)
            assert response.content == b""
            self.checked.add((method, template, response.status_code))
            return
        validator = _validator(self.document_text, template, method.lower(), status)
        assert response.headers["content-type"] == "application/json", response.headers
        errors = [e.message for e in validator.iter_errors(response.json())]
        assert not errors, (method, template, status, errors, response.text)
        self.checked.add((method, template, response.status_code))


async def test_every_rendered_answer_validates_against_the_document(
    client: httpx.AsyncClient, document: dict[str, Any]
) -> None:
    api = Conformance(client, document)
    await make_account(client, "acc-1")
    await make_account(client, "acc-2", currency="EUR")
    customers = await api.call("GET", "/customers", params={"pageSize": 1})
    assert customers.json()["nextToken"]
    await api.call("GET", "/customers/{customer_id}", path="/customers/cust-acc-1")
    await api.call("GET", "/customers/{customer_id}", path="/customers/nobody")
    await api.call("GET", "/accounts", params={"pageSize": 1})
    await api.call("GET", "/accounts/{account_id}", path="/accounts/acc-1")
    made = await api.call(
        "POST",
        "/customers",
        json={
            "id": "cust-3",
            "name": "Customer Three",
            "primaryEmail": "three@example.test",
            "address": {"line1": "3 Main St", "country": "US"},
            "settings": [
                {"id": "s", "value": "v", "namespace": "n", "name": "s", "dataType": "STRING"}
            ],
        },
    )
    assert made.status_code == 201
    await api.call(
        "POST",
        "/accounts",
        json={
            "id": "acc-3",
            "name": "Account Three",
            "customerId": "cust-3",
            "address": {"line1": "3 Main St"},
            "metadata": {"k": "v"},
            "tags": ["t"],
            "netTermDays": 30,
            "primaryEmail": "acc3@example.test",
        },
    )
    await api.call("POST", "/accounts", json={"id": "acc-3", "name": "Again", "customerId": "x"})
    await api.call("POST", "/customers", json={"id": "cust-3"})

    single = await api.call("POST", "/credits", json=grant_body(amount="not a number"))
    assert single.status_code == 400
    large = "999999999999999999.9999999999"
    maximal = await post_raw(
        client,
        "/credits",
        json.dumps(grant_body(amount=0)).replace('"creditAmount": 0', f'"creditAmount": {large}'),
    )
    api.check("POST", "/credits", maximal)
    credit = maximal.json()
    batch = await api.call(
        "POST",
        "/credits",
        json={
            "creditRequests": [
                grant_body("acc-2", 0.5, effectiveUntil="2026-12-31", idempotencyKey="k1"),
                grant_body("acc-2", 7, effectiveFrom="2027-01-01", grantorId="g"),
                grant_body("acc-2", 3, applicableEntityIds=["um.x"]),
            ]
        },
    )
    assert batch.status_code == 200
    again = await api.call(
        "POST", "/credits", json=grant_body("acc-2", 1, idempotencyKey="k1", purpose="other")
    )
    assert again.status_code == 409
    await api.call("POST", "/credits", json=grant_body("nowhere"))

    details = "/credits/{credit_id}"
    await api.call("GET", details, path=f"/credits/{credit['id']}")
    await api.call("GET", details, path="/credits/cred.none")
    await api.call("GET", "/credits", params={"pageSize": 2})
    await api.call("GET", "/credits", params={"account_id": "acc-2", "status": "ACTIVE"})
    await api.call("GET", "/credits", params={"pageSize": 0})
    await api.call("GET", "/credits", params={"nextToken": "garbage"})
    for account in ("acc-1", "acc-2", "nobody"):
        await api.call(
            "GET",
            "/accounts/{account_id}/credit_balance",
            path=f"/accounts/{account}/credit_balance",
        )

    apps = "/accounts/{account_id}/credit_applications"
    for invoice, mode in (("inv-1", "HOLD"), ("inv-2", "DEBIT"), ("inv-3", "HOLD")):
        applied = await api.call(
            "POST",
            apps,
            path="/accounts/acc-2/credit_applications",
            json={
                "invoiceId": invoice,
                "mode": mode,
                "lineItems": [
                    {"entityId": "um.x", "entityType": "USAGE_METER_RATE_CARD", "amount": 2},
                    {"entityId": "ff.y", "entityType": "FIXED_FEE_RATE_CARD", "amount": 100},
                ],
            },
        )
        assert applied.status_code == 200, applied.text
    one = apps + "/{invoice_id}"
    await api.call("GET", apps, path="/accounts/acc-2/credit_applications", params={"pageSize": 1})
    await api.call("GET", apps, path="/accounts/nobody/credit_applications")
    await api.call("GET", one, path="/accounts/acc-2/credit_applications/inv-1")
    await api.call("GET", one, path="/accounts/acc-2/credit_applications/inv-9")
    for action, invoice in (("capture", "inv-1"), ("release", "inv-3"), ("release", "inv-2")):
        await api.call(
            "POST",
            one + f"/{action}",
            path=f"/accounts/acc-2/credit_applications/{invoice}/{action}",
        )

    void = "/credits/{credit_id}/void"
    await api.call("POST", void, path=f"/credits/{credit['id']}/void")
    await api.call("POST", void, path=f"/credits/{credit['id']}/void")
    await api.call("GET", "/health")
    await api.call("GET", "/ready")

    meter = {
        "id": "um.x",
        "name": "Tokens",
        "eventSchemaName": "llm_call",
        "aggregation": "SUM",
        "attribute": "tokens",
        "creditRate": {"credits": 1, "perQuantity": 3},
    }
    assert (await api.call("POST", "/usage_meters", json=meter)).status_code == 201
    await api.call("POST", "/usage_meters", json=meter)
    await api.call("POST", "/usage_meters", json={**meter, "id": "um y"})
    await api.call("GET", "/usage_meters", params={"pageSize": 1})
    one_meter = "/usage_meters/{meter_id}"
    await api.call("GET", one_meter, path="/usage_meters/um.x")
    await api.call("GET", one_meter, path="/usage_meters/um.none")
    rate = {"creditRate": {"credits": 2, "perQuantity": 1}, "effectiveFrom": "2026-11-24T00:00:00Z"}
    await api.call("PATCH", one_meter, path="/usage_meters/um.x", json=rate)
    await api.call("PATCH", one_meter, path="/usage_meters/um.none", json=rate)
    for action in ("deactivate", "activate"):
        await api.call("POST", one_meter + f"/{action}", path=f"/usage_meters/um.x/{action}")
        await api.call("POST", one_meter + f"/{action}", path=f"/usage_meters/um.no/{action}")
    event = {
        "schemaName": "llm_call",
        "id": "e-1",
        "timestamp": "2026-11-24T11:00:00Z",
        "accountId": "acc-2",
        "attributes": [{"name": "tokens", "value": "1"}],
        "dimensions": {},
    }
    assert (await api.call("POST", "/ingest", json={"event": event})).status_code == 202
    await api.call("POST", "/ingest", json={"event": {**event, "accountId": "nobody"}})
    await api.call("POST", "/ingest", json={"event": {**event, "attributes": []}})
    await api.call("POST", "/ingest", json={"event": {**event, "dimensions": {"a": "b"}}})
    batch = await api.call("POST", "/ingestBatch", json={"events": [event, {**event, "id": "e-2"}]})
    assert batch.status_code == 202
    partly = await api.call("POST", "/ingestBatch", json={"events": [event, {"id": 1}]})
    assert partly.status_code == 207
    await api.call("POST", "/ingestBatch", json={"events": []})
    await client._transport.app.state.applier.drain()  # type: ignore[attr-defined]
    usage = "/accounts/{account_id}/usage"
    await api.call("GET", usage, path="/accounts/acc-2/usage")
    await api.call("GET", usage, path="/accounts/nobody/usage")
    await api.call("GET", usage, path="/accounts/acc-2/usage", params={"from": "bad"})
    events = usage + "/events"
    await api.call("GET", events, path="/accounts/acc-2/usage/events", params={"pageSize": 1})
    await api.call("GET", events, path="/accounts/nobody/usage/events")
    await api.call("GET", "/usage/events/{event_id}", path="/usage/events/e-1")
    await api.call("GET", "/usage/events/{event_id}", path="/usage/events/e-none")

    await walk_webhooks(api, client)
    wallet = "/accounts/{account_id}/wallet"
    topup = "/accounts/{account_id}/wallet_topup"
    await api.call("GET", wallet, path="/accounts/acc-2/wallet")
    await api.call("POST", topup, path="/accounts/acc-2/wallet_topup", json={"topupAmount": 0})
    await api.call("POST", topup, path="/accounts/nobody/wallet_topup", json={"topupAmount": 1})
    assert (
        await api.call(
            "POST",
            topup,
            path="/accounts/acc-2/wallet_topup",
            json={"topupAmount": 5},
            headers={"Idempotency-Key": "t-1"},
        )
    ).status_code == 200
    await api.call(
        "POST",
        topup,
        path="/accounts/acc-2/wallet_topup",
        json={"topupAmount": 6},
        headers={"Idempotency-Key": "t-1"},
    )
    await api.call("GET", wallet, path="/accounts/acc-2/wallet")
    await api.call("PATCH", wallet, path="/accounts/acc-2/wallet", json={"status": "INACTIVE"})
    await api.call("PATCH", wallet, path="/accounts/acc-1/wallet", json={})
    await api.call("PATCH", wallet, path="/accounts/acc-2/wallet", json={"status": "x"})
    await api.call("PATCH", wallet, path="/accounts/acc-2/wallet", json={"status": "ACTIVE"})
    entries = wallet + "/entries"
    await api.call("GET", entries, path="/accounts/acc-2/wallet/entries", params={"pageSize": 1})
    await api.call("GET", entries, path="/accounts/acc-1/wallet/entries")
    walleted = await api.call(
        "POST",
        apps,
        path="/accounts/acc-2/credit_applications",
        json={
            "invoiceId": "inv-w",
            "mode": "HOLD",
            "lineItems": [{"entityId": "ff.z", "entityType": "FIXED_FEE_RATE_CARD", "amount": 1e3}],
        },
    )
    assert "walletId" in walleted.text
    customer = "/customers/{customer_id}"
    await api.call("PATCH", customer, path="/customers/cust-3", json={"name": "Three Again"})
    await api.call("PATCH", customer, path="/customers/cust-3", json={"name": "x"})
    await api.call("PATCH", customer, path="/customers/nobody", json={})
    account = "/accounts/{account_id}"
    await api.call("PATCH", account, path="/accounts/acc-3", json={"invoiceCurrency": "EUR"})
    await api.call("PATCH", account, path="/accounts/acc-2", json={"invoiceCurrency": "GBP"})
    await api.call("PATCH", account, path="/accounts/nobody", json={"name": "Nobody"})
    await api.call("PATCH", account, path="/accounts/acc-3", json={"tags": "x"})
    await api.call("DELETE", customer, path="/customers/cust-3")
    await api.call("DELETE", account, path="/accounts/acc-2")
    assert (await api.call("DELETE", account, path="/accounts/acc-3")).status_code == 200
    await api.call("DELETE", account, path="/accounts/acc-3")
    assert (await api.call("DELETE", customer, path="/customers/cust-3")).status_code == 200

    anonymous = httpx.AsyncClient(transport=client._transport, base_url=str(client.base_url))
    async with anonymous:
        api.check("GET", "/credits", await anonymous.get("/credits"))

    answered = {(method, template) for method, template, _ in api.checked}
    assert answered == {(method.upper(), path) for path, method, _ in operations(document)}, (
        "every operation is checked"
    )
    statuses = {status for _, _, status in api.checked}
    assert {200, 201, 400, 401, 404, 409} <= statuses


async def walk_webhooks(api: Conformance, client: httpx.AsyncClient) -> None:
    """Every webhook and alert operation, answered and refused (docs/webhooks.md)."""
    app = client._transport.app  # type: ignore[attr-defined]
    app.state.webhooks = WebhookSettings(allow_http=True, allow_private=True)
    one = "/webhook_endpoints/{endpoint_id}"
    with receiver() as hooks:
        made = await api.call("POST", "/webhook_endpoints", json={"url": hooks.url})
        assert made.status_code == 201
        endpoint_id = made.json()["id"]
        await api.call("POST", "/webhook_endpoints", json={"url": "ftp://x"})
        await api.call("GET", "/webhook_endpoints", params={"pageSize": 1})
        await api.call("GET", one, path=f"/webhook_endpoints/{endpoint_id}")
        await api.call("GET", one, path="/webhook_endpoints/whep.none")
        await api.call(
            "PATCH", one, path=f"/webhook_endpoints/{endpoint_id}", json={"description": "d"}
        )
        await api.call("PATCH", one, path="/webhook_endpoints/whep.none", json={})
        await api.call("PATCH", one, path=f"/webhook_endpoints/{endpoint_id}", json={"url": 1})
        rotate = one + "/rotate_secret"
        await api.call("POST", rotate, path=f"/webhook_endpoints/{endpoint_id}/rotate_secret")
        await api.call("POST", rotate, path="/webhook_endpoints/whep.none/rotate_secret")
        replay = one + "/replay"
        since = {"since": "2026-01-01T00:00:00Z"}
        await api.call("POST", replay, path=f"/webhook_endpoints/{endpoint_id}/replay", json=since)
        await api.call("POST", replay, path="/webhook_endpoints/whep.none/replay", json=since)
        await api.call("POST", replay, path=f"/webhook_endpoints/{endpoint_id}/replay", json={})
        await app.state.deliverer.drain()
        log = one + "/deliveries"
        await api.call("GET", log, path=f"/webhook_endpoints/{endpoint_id}/deliveries")
        await api.call("GET", log, path="/webhook_endpoints/whep.none/deliveries")
        events = await api.call("GET", "/events", params={"pageSize": 2})
        first = events.json()["data"][0]["id"]
        await api.call("GET", "/events", params={"after": first, "type": "credit.granted"})
        await api.call("GET", "/events", params={"after": "evt.none"})
        await api.call("GET", "/events", params={"type": "nothing"})
        disabled = {"status": "DISABLED"}
        await api.call("PATCH", one, path=f"/webhook_endpoints/{endpoint_id}", json=disabled)
        await api.call("POST", replay, path=f"/webhook_endpoints/{endpoint_id}/replay", json=since)
        await api.call("DELETE", one, path=f"/webhook_endpoints/{endpoint_id}")
        await api.call("DELETE", one, path=f"/webhook_endpoints/{endpoint_id}")
    for body in ({"thresholds": [10], "expiringSoonDays": 3}, {"thresholds": [-1]}):
        await api.call("PUT", "/balance_alerts", json=body)
    await api.call("GET", "/balance_alerts")
    alerts = "/accounts/{account_id}/balance_alerts"
    await api.call("PUT", alerts, path="/accounts/acc-2/balance_alerts", json={"thresholds": [1]})
    await api.call("PUT", alerts, path="/accounts/nobody/balance_alerts", json={})
    await api.call("PUT", alerts, path="/accounts/acc-2/balance_alerts", json={"x": 1})
    await api.call("GET", alerts, path="/accounts/acc-2/balance_alerts")
    await api.call("GET", alerts, path="/accounts/nobody/balance_alerts")


async def test_fast_reads_hold_path_ids_to_the_declared_rules(client: httpx.AsyncClient) -> None:
    """The two reads served by plain Starlette routes refuse an id the document refuses, with
    the words the FastAPI routes use."""
    too_long = "a" * 51
    slow = await client.get(f"/customers/{too_long}")
    assert slow.status_code == 400
    assert slow.json()["message"].startswith("customer_id: ")
    for path, name in (("/credits/{}", "credit_id"), ("/accounts/{}/credit_balance", "account_id")):
        fast = await client.get(path.format(too_long))
        assert fast.status_code == 400
        assert fast.json()["message"] == slow.json()["message"].replace("customer_id", name)
        assert (await client.get(path.format("a" * 50))).status_code == 404


async def test_an_integer_with_a_zero_fraction_is_an_integer(client: httpx.AsyncClient) -> None:
    """JSON Schema's `integer` (priority, netTermDays) includes 3.0, so the API takes it; 3.5 and
    numbers past 18 digits are refused."""
    await make_account(client, "acc-1")
    body = json.dumps(grant_body(priority=0))
    taken = await post_raw(client, "/credits", body.replace('"priority": 0', '"priority": 3.0'))
    assert taken.status_code == 200, taken.text
    assert '"priority":3,' in taken.text
    for refused in ("3.5", "1E+1000000", "true", '"3"'):
        answer = await post_raw(
            client, "/credits", body.replace('"priority": 0', f'"priority": {refused}')
        )
        assert answer.status_code == 400, refused
        assert answer.json()["message"].startswith("priority: "), answer.text
    account = await client.post(
        "/accounts",
        content='{"id": "acc-9", "name": "Nine", "customerId": "cust-acc-1", "netTermDays": 30.0}',
        headers={"Content-Type": "application/json"},
    )
    assert account.status_code == 201, account.text
    assert account.json()["netTermDays"] == 30


JSON_SCHEMA_WORDS = {
    "$ref", "additionalProperties", "anyOf", "oneOf", "const", "default", "description",
    "enum", "exclusiveMaximum", "exclusiveMinimum", "format", "items", "maxItems", "maxLength",
    "maximum", "minItems", "minLength", "minimum", "multipleOf", "pattern", "properties",
    "required", "title", "type", "uniqueItems", "examples",
}  # fmt: skip


async def test_schemas_speak_only_json_schema(document: dict[str, Any]) -> None:
    """A constraint pydantic cannot place is written under its Python name ("ge"), which no
    client or validator reads: every keyword must be JSON Schema's."""

    def keywords(schema: Any) -> set[str]:
        if isinstance(schema, list):
            return set().union(*(keywords(s) for s in schema)) if schema else set()
        if not isinstance(schema, dict):
            return set()
        found = set(schema) - {"properties"}
        for key, value in schema.items():
            if key == "properties":
                found |= set().union(*(keywords(s) for s in value.values()))
            elif key not in ("enum", "const", "default", "required", "examples"):
                found |= keywords(value)
        return found

    schemas = list(document["components"]["schemas"].values())
    schemas += [p["schema"] for _, _, op in operations(document) for p in op.get("parameters", [])]
    assert keywords(schemas) <= JSON_SCHEMA_WORDS, keywords(schemas) - JSON_SCHEMA_WORDS


async def test_request_examples_are_valid_requests(document: dict[str, Any]) -> None:
    """/docs offers these in "Try it out"; each passes both the document and the validation."""
    import drawdown.api.schemas as models
    import drawdown.api.usage_schemas as usage_models
    import drawdown.api.wallet_schemas as wallet_models

    checked = 0
    for name, schema in document["components"]["schemas"].items():
        for example in schema.get("examples", []):
            root = {"$schema": "https://json-schema.org/draft/2020-12/schema", **schema}
            root["components"] = document["components"]
            validator = jsonschema_rs.Draft202012Validator(root, validate_formats=True)
            assert not [e.message for e in validator.iter_errors(example)], name
            decimal_example = json.loads(json.dumps(example), parse_float=Decimal)
            model = (
                getattr(models, name, None)
                or getattr(usage_models, name, None)
                or getattr(wallet_models, name)
            )
            model.model_validate(decimal_example)
            checked += 1
    assert checked >= 5
