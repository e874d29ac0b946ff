"""The Credits API in-process, on the session's real database."""

from decimal import Decimal

import httpx

from drawdown.clock import FixedClock
from tests.helpers import decimal_json, grant, grant_body, make_account, number_literal, post_raw


async def test_single_grant_answers_the_credit_with_its_account_fields(
    client: httpx.AsyncClient,
) -> None:
    await make_account(client, "acc-1", currency="EUR")
    credit = await grant(client, amount=1000, grantorId="sales", applicableEntityIds=["um.x"])
    assert credit["id"].startswith("cred.")
    assert credit["accountId"] == "acc-1"
    assert credit["customerId"] == "cust-acc-1"
    assert credit["creditUnit"] == "EUR"
    assert credit["status"] == "ACTIVE"
    assert credit["grantorId"] == "sales"
    assert credit["applicableEntityIds"] == ["um.x"]
    assert (credit["holdAmount"], credit["consumedAmount"]) == (0, 0)


async def test_amounts_stay_exact_as_text(client: httpx.AsyncClient) -> None:
    await make_account(client)
    body = (
        '{"creditRequests": ['
        '{"accountId":"acc-1","purpose":"P","effectiveFrom":"2026-01-01","creditAmount":0.1,'
        '"priority":1},'
        '{"accountId":"acc-1","purpose":"P","effectiveFrom":"2026-01-01","creditAmount":0.2,'
        '"priority":1},'
        '{"accountId":"acc-1","purpose":"P","effectiveFrom":"2026-01-01","creditAmount":1000,'
        '"priority":1}]}'
    )
    response = await post_raw(client, "/credits", body)
    assert response.status_code == 200, response.text
    assert '"creditAmount":0.1,' in response.text
    assert '"creditAmount":1000,' in response.text
    balance = await client.get("/accounts/acc-1/credit_balance")
    assert number_literal(balance.text, "availableBalance") == "1000.3"


async def test_eighteen_and_ten_digits_round_trip_and_more_is_refused(
    client: httpx.AsyncClient,
) -> None:
    await make_account(client)
    exact = "123456789012345678.0123456789"
    body = (
        '{"accountId":"acc-1","purpose":"P","effectiveFrom":"2026-01-01",'
        f'"creditAmount":{exact},"priority":1}}'
    )
    response = await post_raw(client, "/credits", body)
    assert response.status_code == 200, response.text
    assert f'"creditAmount":{exact},' in response.text
    for too_long in ("1234567890123456789", "0.12345678901"):
        refused = await post_raw(client, "/credits", body.replace(exact, too_long))
        assert refused.status_code == 400
        assert "creditAmount" in refused.json()["message"]


async def test_bad_amounts_are_400_and_change_nothing(client: httpx.AsyncClient) -> None:
    await make_account(client)
    for amount in (0, -5, "5", None, True):
        response = await client.post("/credits", json=grant_body(amount=amount))
        assert response.status_code == 400, (amount, response.text)
        assert set(response.json()) == {"message"}
        assert "creditAmount" in response.json()["message"]
    missing = grant_body()
    del missing["creditAmount"]
    response = await client.post("/credits", json=missing)
    assert response.json() == {"message": "creditAmount: is required"}
    listed = await client.get("/credits")
    assert listed.json()["data"] == []


async def test_effective_until_before_from_is_400(client: httpx.AsyncClient) -> None:
    await make_account(client)
    response = await client.post(
        "/credits", json=grant_body(effectiveFrom="2026-05-02", effectiveUntil="2026-05-01")
    )
    assert response.status_code == 400
    assert "effectiveUntil" in response.json()["message"]


async def test_grant_for_unknown_account_is_404(client: httpx.AsyncClient) -> None:
    response = await client.post("/credits", json=grant_body("nope"))
    assert response.status_code == 404
    assert response.json() == {"message": "account 'nope' was not found"}


async def test_batch_is_all_or_nothing(client: httpx.AsyncClient) -> None:
    await make_account(client)
    response = await client.post(
        "/credits", json={"creditRequests": [grant_body(), grant_body("missing-account")]}
    )
    assert response.status_code == 404
    assert (await client.get("/credits")).json()["data"] == []
    balance = (await client.get("/accounts/acc-1/credit_balance")).json()
    assert balance["activeCredits"] == 0


async def test_idempotency_key_returns_the_first_credit_or_conflicts(
    client: httpx.AsyncClient,
) -> None:
    await make_account(client)
    first = await grant(client, idempotencyKey="grant-1")
    again = await grant(client, idempotencyKey="grant-1")
    assert again["id"] == first["id"]
    assert len((await client.get("/credits")).json()["data"]) == 1
    different = await client.post("/credits", json=grant_body(amount=5, idempotencyKey="grant-1"))
    assert different.status_code == 409
    assert "idempotencyKey" in different.json()["message"]
    balance = (await client.get("/accounts/acc-1/credit_balance")).json()
    assert balance["activeCredits"] == 100


async def test_back_dated_grant_is_credited_then_expired_at_once(
    client: httpx.AsyncClient,
) -> None:
    await make_account(client)
    credit = await grant(client, effectiveFrom="2025-01-01", effectiveUntil="2025-12-31")
    assert credit["status"] == "EXPIRED"
    details = (await client.get(f"/credits/{credit['id']}")).json()
    kinds = [(t["transactionType"], t["amount"]) for t in details["transactions"]]
    assert kinds == [("CREDITED", 100), ("EXPIRED", 100)]
    balance = (await client.get("/accounts/acc-1/credit_balance")).json()
    assert balance["activeCredits"] == 0


async def test_details_show_every_transaction(client: httpx.AsyncClient) -> None:
    await make_account(client)
    credit = await grant(client, amount=50)
    details = (await client.get(f"/credits/{credit['id']}")).json()
    assert details["id"] == credit["id"]
    [line] = details["transactions"]
    assert line["transactionType"] == "CREDITED"
    assert line["amount"] == 50
    assert line["creditId"] == credit["id"]
    assert line["id"].startswith("ctxn.")


async def test_unknown_credit_is_404(client: httpx.AsyncClient) -> None:
    response = await client.get("/credits/cred.00000000000.abcde")
    assert response.status_code == 404
    assert response.json() == {"message": "credit 'cred.00000000000.abcde' was not found"}


async def test_void_moves_what_is_available_and_cannot_repeat(
    client: httpx.AsyncClient,
) -> None:
    await make_account(client)
    credit = await grant(client, amount=40)
    voided = await client.post(f"/credits/{credit['id']}/void")
    assert voided.status_code == 200
    assert voided.json()["status"] == "VOIDED"
    details = (await client.get(f"/credits/{credit['id']}")).json()
    assert [(t["transactionType"], t["amount"]) for t in details["transactions"]] == [
        ("CREDITED", 40),
        ("VOIDED", 40),
    ]
    again = await client.post(f"/credits/{credit['id']}/void")
    assert again.status_code == 400
    assert "already voided" in again.json()["message"]
    balance = (await client.get("/accounts/acc-1/credit_balance")).json()
    assert balance["activeCredits"] == 0


async def test_list_filters_and_pages_through_every_credit_once(
    client: httpx.AsyncClient,
) -> None:
    await make_account(client, "acc-1")
    await make_account(client, "acc-2")
    granted = [(await grant(client, "acc-1", amount=i + 1))["id"] for i in range(7)]
    other = await grant(client, "acc-2")
    seen: list[str] = []
    token = None
    while True:
        params = {"pageSize": 3, "account_id": "acc-1"}
        if token:
            params["nextToken"] = token
        page = (await client.get("/credits", params=params)).json()
        seen += [c["id"] for c in page["data"]]
        # a grant made while paging must not disturb the pages
        await grant(client, "acc-2")
        token = page.get("nextToken")
        if not token:
            break
    assert seen == granted
    by_id = (await client.get("/credits", params={"id": other["id"]})).json()["data"]
    assert [c["id"] for c in by_id] == [other["id"]]
    await client.post(f"/credits/{granted[0]}/void")
    voided = (await client.get("/credits", params={"status": "VOIDED"})).json()["data"]
    assert [c["id"] for c in voided] == [granted[0]]


async def test_list_rejects_bad_paging(client: httpx.AsyncClient) -> None:
    for params in ({"pageSize": 0}, {"pageSize": 51}, {"nextToken": "garbage!"}, {"status": "X"}):
        response = await client.get("/credits", params=params)
        assert response.status_code == 400, params
        assert set(response.json()) == {"message"}


async def test_balance_separates_future_credits(client: httpx.AsyncClient) -> None:
    await make_account(client)
    await grant(client, amount=100)
    await grant(client, amount=Decimal(30).__int__(), effectiveFrom="2026-12-01")
    balance = decimal_json(await client.get("/accounts/acc-1/credit_balance"))
    assert balance["activeCredits"] == 130
    assert balance["availableBalance"] == 100
    assert balance["runningBalance"] == 100
    assert balance["inapplicableCredits"] == 30
    assert balance["unit"] == "USD"


async def test_a_credit_past_its_last_day_never_reads_active(
    client: httpx.AsyncClient, clock: FixedClock
) -> None:
    await make_account(client)
    credit = await grant(client, amount=10, effectiveUntil="2026-11-30")
    clock.set(clock.now().replace(month=12, day=1))
    details = (await client.get(f"/credits/{credit['id']}")).json()
    assert details["status"] == "EXPIRED"
    assert details["transactions"][-1]["transactionType"] == "EXPIRED"
    listed = (await client.get("/credits", params={"status": "ACTIVE"})).json()["data"]
    assert listed == []
    balance = (await client.get("/accounts/acc-1/credit_balance")).json()
    assert balance["activeCredits"] == 0


async def test_future_credit_becomes_applicable_on_its_first_day(
    client: httpx.AsyncClient, clock: FixedClock
) -> None:
    await make_account(client)
    await grant(client, amount=30, effectiveFrom="2026-11-25")
    before = (await client.get("/accounts/acc-1/credit_balance")).json()
    assert (before["availableBalance"], before["inapplicableCredits"]) == (0, 30)
    clock.set(clock.now().replace(day=25))
    after = (await client.get("/accounts/acc-1/credit_balance")).json()
    assert (after["availableBalance"], after["inapplicableCredits"]) == (30, 0)
