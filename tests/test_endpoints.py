"""The hot endpoints (api/endpoints.py): one declaration each, served by a plain Starlette route
with no twin, valid requests never handed to pydantic, refusals in FastAPI's order and words."""

from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from fastapi.routing import APIRoute, iter_route_contexts
from starlette.routing import Match

from drawdown.api import applications, credits
from drawdown.api.endpoints import Endpoint, EndpointRoute
from drawdown.store.database import Database
from tests.conftest import new_key
from tests.helpers import grant, grant_body, make_account, post_raw

ENDPOINTS = [e for e in [*credits.routes, *applications.routes] if isinstance(e, Endpoint)]


def concrete(path: str) -> str:
    return path.replace("{", "x-").replace("}", "")


def matching(app: FastAPI, method: str, path: str) -> Iterator[Any]:
    scope = {"type": "http", "method": method, "path": path, "root_path": ""}
    for context in iter_route_contexts(app.router.routes):
        match, _ = context.matches(scope)
        if match == Match.FULL:
            yield context.original_route


def test_the_hot_endpoints_are_declared() -> None:
    assert {(e.method, e.path) for e in ENDPOINTS} == {
        ("POST", "/credits"),
        ("GET", "/credits/{credit_id}"),
        ("POST", "/credits/{credit_id}/void"),
        ("GET", "/accounts/{account_id}/credit_balance"),
        ("POST", "/accounts/{account_id}/credit_applications"),
        ("POST", "/accounts/{account_id}/credit_applications/{invoice_id}/capture"),
        ("POST", "/accounts/{account_id}/credit_applications/{invoice_id}/release"),
    }


async def test_each_is_served_by_its_own_route_alone(client: httpx.AsyncClient) -> None:
    app = client._transport.app  # type: ignore[attr-defined]
    for endpoint in ENDPOINTS:
        routes = list(matching(app, endpoint.method, concrete(endpoint.path)))
        assert len(routes) == 1, (endpoint.path, routes)
        assert isinstance(routes[0], EndpointRoute) and routes[0].declared is endpoint
        assert not isinstance(routes[0], APIRoute)


async def test_each_document_entry_is_made_from_the_declaration(
    client: httpx.AsyncClient,
) -> None:
    document = (await client.get("/openapi.json")).json()
    for endpoint in ENDPOINTS:
        operation = document["paths"][endpoint.path][endpoint.method.lower()]
        assert operation["operationId"] == endpoint.operation_id
        assert operation["summary"] == endpoint.summary
        assert operation["tags"] == [endpoint.tag]
        assert set(operation["responses"]) == {"200", *map(str, endpoint.statuses)}
        described = {p["name"]: p["description"] for p in operation.get("parameters", [])}
        assert described == endpoint.path_params
        assert ("requestBody" in operation) == (endpoint.body is not None)


async def test_valid_requests_never_reach_the_documented_models(
    client: httpx.AsyncClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    await make_account(client)

    def judged(*_: Any) -> None:
        raise AssertionError("a valid request took the documented (pydantic) path")

    monkeypatch.setattr(EndpointRoute, "_judge", judged)
    credit = await grant(client, amount=12.5)
    batch = await client.post("/credits", json={"creditRequests": [grant_body(amount=3)] * 2})
    assert batch.status_code == 200, batch.text
    base = "/accounts/acc-1/credit_applications"
    item = {"entityId": "um.x", "entityType": "USAGE_METER_RATE_CARD", "amount": 1}
    for invoice, mode in (("inv-1", "HOLD"), ("inv-2", "HOLD"), ("inv-3", "DEBIT")):
        body = {"invoiceId": invoice, "mode": mode, "lineItems": [item], "asOf": None}
        assert (await client.post(base, json=body)).status_code == 200
    assert (await client.post(f"{base}/inv-1/capture")).status_code == 200
    assert (await client.post(f"{base}/inv-2/release")).status_code == 200
    assert (await client.get(f"/credits/{credit['id']}")).status_code == 200
    assert (await client.get("/accounts/acc-1/credit_balance")).json()["availableBalance"] == 16.5
    assert (await client.post(f"/credits/{credit['id']}/void")).status_code == 200


async def test_refusals_come_in_fastapis_order(client: httpx.AsyncClient, db: Database) -> None:
    """Query parameters, then the body's JSON, then the key, then the path and the fields."""
    await make_account(client)
    anonymous = {"Authorization": "", "Content-Type": "application/json"}
    read_only = {"Authorization": f"Bearer {await new_key(db, read_only=True)}"}
    bad_field = grant_body(priority="high")

    async def message(response: httpx.Response, status: int) -> str:
        assert response.status_code == status, response.text
        return str(response.json()["message"])

    answer = await client.post("/credits?x=1", content="{", headers=anonymous)
    assert await message(answer, 400) == (
        "x: is not a query parameter of this endpoint (it takes: none)"
    )
    answer = await client.post("/credits", content="{", headers=anonymous)
    assert (await message(answer, 400)).startswith("the request body is not valid JSON")
    answer = await client.post("/credits", json=bad_field, headers=anonymous)
    assert await message(answer, 401) == (
        "missing Authorization header; send 'Authorization: Bearer <api key>'"
    )
    answer = await client.post("/credits", json=bad_field, headers=read_only)
    assert (await message(answer, 403)).startswith("this API key is read-only")
    answer = await client.post("/accounts/a%20b/credit_applications", json={"mode": "X"})
    assert await message(answer, 400) == (
        "account_id: must be 1 to 50 visible characters without '/', whitespace or control "
        "characters (and 3 more problems)"
    )
    answer = await post_raw(client, "/credits", "")
    assert await message(answer, 400) == "the request body is required"
    answer = await client.post("/credits", content=b"{}", headers={"Content-Type": "text/plain"})
    assert await message(answer, 400) == (
        "the request body must be a JSON object sent with Content-Type: application/json"
    )
