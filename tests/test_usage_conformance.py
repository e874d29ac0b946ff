"""Conformance of ingestion: a real `drawdown serve`, events sent only through Togai's
official client (`togai_client.EventIngestionApi`: `ingest`, `ingest_batch`). The 202 and 207
answers must deserialize into the client's `IngestEventResponse`, refusals into its
`ErrorResponse`, and the account's balance (read through `CreditsApi`) must move by exactly
the priced cost within the lag goal of usage.md (2 s from the 202)."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import httpx
import pytest
import togai_client
from togai_client.exceptions import ApiException
from togai_client.models import (
    Attribute,
    CreateCreditRequest,
    CreditRequest,
    ErrorResponse,
    Event,
    IngestBatchEventRequest,
    IngestEventRequest,
    IngestEventResponse,
)

from tests.live_server import create_key, live_server

LAG_GOAL_S = 2.0
TODAY = datetime.now(UTC).date()


@pytest.fixture(scope="module")
def base_url(database_url: str) -> Iterator[str]:
    with live_server(database_url) as server:
        yield server.base_url


@dataclass(frozen=True)
class Togai:
    client: togai_client.ApiClient
    events: togai_client.EventIngestionApi
    credits: togai_client.CreditsApi
    http: httpx.Client  # for what Togai's client has no call for: drawdown's usage meters


@pytest.fixture(scope="module")
def togai(base_url: str, database_url: str) -> Iterator[Togai]:
    key = create_key(database_url, f"conf-usage-{uuid.uuid4().hex}")
    config = togai_client.Configuration(host=base_url, access_token=key)
    with (
        togai_client.ApiClient(config) as client,
        httpx.Client(base_url=base_url, headers={"Authorization": f"Bearer {key}"}) as http,
    ):
        api = Togai(
            client, togai_client.EventIngestionApi(client), togai_client.CreditsApi(client), http
        )
        response = http.post(
            "/usage_meters",
            json={
                "id": "um.conf-tokens",
                "name": "Tokens",
                "eventSchemaName": "conf_call",
                "aggregation": "SUM",
                "attribute": "tokens",
                "creditRate": {"credits": 2, "perQuantity": 1000},
            },
        )
        assert response.status_code == 201, response.text
        yield api


def account_with_credit(togai: Togai, amount: int = 100) -> str:
    account_id = f"acc-{uuid.uuid4().hex[:12]}"
    created = togai.http.post(
        "/customers",
        json={
            "id": f"cust-{account_id}",
            "name": "Usage conformance",
            "primaryEmail": "c@example.test",
            "address": {},
            "account": {"id": account_id, "name": account_id},
        },
    )
    assert created.status_code == 201, created.text
    togai.credits.create_credit(
        CreateCreditRequest(
            credit_requests=[
                CreditRequest(
                    account_id=account_id,
                    purpose="PREPAID_CREDIT",
                    effective_from=TODAY - timedelta(days=1),
                    credit_amount=amount,
                    priority=1,
                )
            ]
        )
    )
    return account_id


def event(account_id: str, tokens: str, event_id: str | None = None) -> Event:
    return Event(
        schema_name="conf_call",
        id=event_id or f"evt-{uuid.uuid4().hex}",
        timestamp=datetime.now(UTC) - timedelta(seconds=5),
        account_id=account_id,
        attributes=[Attribute(name="tokens", value=tokens, unit="tokens")],
        dimensions={"model": "large"},
    )


def available(togai: Togai, account_id: str) -> Decimal:
    balance = togai.credits.credit_balance_for_account(account_id)
    return Decimal(str(balance.available_balance))


def wait_for_balance(togai: Togai, account_id: str, expected: Decimal, since: float) -> float:
    """Seconds from `since` (the 202) until the balance shows `expected`."""
    deadline = since + 30
    while True:
        if available(togai, account_id) == expected:
            return time.monotonic() - since
        assert time.monotonic() < deadline, f"{account_id}: balance never reached {expected}"
        time.sleep(0.01)


def test_ingest_answers_202_and_the_balance_moves_within_the_lag_goal(togai: Togai) -> None:
    account_id = account_with_credit(togai)
    one = event(account_id, "1520")
    response = togai.events.ingest_with_http_info(IngestEventRequest(event=one))
    answered = time.monotonic()
    assert response.status_code == 202
    body = response.data
    assert isinstance(body, IngestEventResponse)
    assert body.success is True and body.status_code == 202
    assert body.details == {"accepted": 1, "duplicates": 0}
    # 1520 tokens at 2 credits per 1000: 3.04
    lag = wait_for_balance(togai, account_id, Decimal("96.96"), answered)
    assert lag <= LAG_GOAL_S, f"the balance moved {lag:.2f} s after the 202"
    # the same event again: accepted, a duplicate, and the balance does not move again
    again = togai.events.ingest(IngestEventRequest(event=one))
    assert isinstance(again, IngestEventResponse)
    assert again.details == {"accepted": 1, "duplicates": 1}
    time.sleep(0.5)
    assert available(togai, account_id) == Decimal("96.96")


def test_ingest_batch_answers_202_when_every_event_is_accepted(togai: Togai) -> None:
    account_id = account_with_credit(togai)
    events = [event(account_id, tokens) for tokens in ("1000", "0.5", "250", "1")]
    response = togai.events.ingest_batch_with_http_info(IngestBatchEventRequest(events=events))
    answered = time.monotonic()
    assert response.status_code == 202
    body = response.data
    assert isinstance(body, IngestEventResponse)
    assert body.success is True and body.status_code == 202
    assert body.details == {"accepted": 4, "duplicates": 0}
    # (1000 + 0.5 + 250 + 1) x 2 / 1000 = 2.503
    lag = wait_for_balance(togai, account_id, Decimal("97.497"), answered)
    assert lag <= LAG_GOAL_S, f"the balance moved {lag:.2f} s after the 202"


def test_ingest_batch_answers_207_naming_each_refused_event(togai: Togai) -> None:
    account_id = account_with_credit(togai)
    good = event(account_id, "500")
    conflicting = event(account_id, "7", event_id=good.id)
    unknown = event(f"nobody-{uuid.uuid4().hex[:8]}", "1")
    batch = IngestBatchEventRequest(events=[good, unknown, conflicting])
    response = togai.events.ingest_batch_with_http_info(batch)
    assert response.status_code == 207
    body = response.data
    assert isinstance(body, IngestEventResponse)
    assert body.success is False and body.status_code == 207
    assert body.message == "2 of 3 events refused"
    assert body.details is not None
    assert (body.details["accepted"], body.details["duplicates"]) == (1, 0)
    refused = body.details["refused"]
    assert [(r["index"], r["id"]) for r in refused] == [(1, unknown.id), (2, good.id)]
    assert unknown.account_id in refused[0]["reason"]
    wait_for_balance(togai, account_id, Decimal(99), time.monotonic())


def test_a_refused_event_is_an_error_response_the_client_reads(togai: Togai) -> None:
    account_id = account_with_credit(togai)
    first = event(account_id, "10")
    togai.events.ingest(IngestEventRequest(event=first))
    other = event(account_id, "11", event_id=first.id)
    with pytest.raises(ApiException) as raised:
        togai.events.ingest(IngestEventRequest(event=other))
    assert raised.value.status == 409
    body = json.loads(raised.value.body)
    assert list(body) == ["message"] and first.id in body["message"]
    missing = Event(
        schema_name="conf_call",
        id=f"evt-{uuid.uuid4().hex}",
        timestamp=datetime.now(UTC),
        account_id=account_id,
        attributes=[],
        dimensions={},
    )
    with pytest.raises(ApiException) as raised:
        togai.events.ingest(IngestEventRequest(event=missing))
    assert raised.value.status == 400
    assert isinstance(raised.value.data, ErrorResponse)
    assert "um.conf-tokens" in raised.value.data.message
