"""Holds, captures, releases and debits through the API, checked by `verify` after each test."""

from collections.abc import AsyncIterator
from datetime import timedelta

import httpx
import pytest

from drawdown.clock import FixedClock
from drawdown.store.database import Database
from tests.conftest import new_key
from tests.helpers import apply, details, grant, lines, make_account
from tests.oracle import assert_books_balance


@pytest.fixture(autouse=True)
async def books_balance_afterwards(
    db: Database, clock: FixedClock, org_name: str
) -> AsyncIterator[None]:
    yield
    await assert_books_balance(db, clock, org_name)


async def balance(client: httpx.AsyncClient, account_id: str = "acc-1") -> dict[str, object]:
    return dict((await client.get(f"/accounts/{account_id}/credit_balance")).json())


async def test_hold_then_capture(client: httpx.AsyncClient) -> None:
    await make_account(client)
    credit = await grant(client, amount=100)
    held = await apply(client, "inv-1", [30, 20])
    assert held.status_code == 200, held.text
    body = held.json()
    assert (body["status"], body["appliedAmount"], body["remainingAmount"]) == ("HELD", 50, 0)
    assert body["lineItems"][0]["allocations"] == [{"creditId": credit["id"], "amount": 30}]
    assert (await details(client, credit["id"]))["holdAmount"] == 50
    assert await balance(client) | {"lastUpdatedAt": None} == {
        "activeCredits": 100,
        "availableBalance": 100,
        "runningBalance": 50,
        "inapplicableCredits": 0,
        "unit": "USD",
        "lastUpdatedAt": None,
    }
    captured = await client.post("/accounts/acc-1/credit_applications/inv-1/capture")
    assert captured.json()["status"] == "DEBITED"
    after = await details(client, credit["id"])
    assert (after["holdAmount"], after["consumedAmount"]) == (0, 50)
    debits = [t for t in after["transactions"] if t["transactionType"] == "DEBITED"]
    assert [(t["invoiceId"], t["entityId"], t["amount"]) for t in debits] == [
        ("inv-1", "um.item-0", 30),
        ("inv-1", "um.item-1", 20),
    ]
    bal = await balance(client)
    assert (bal["availableBalance"], bal["runningBalance"]) == (50, 50)


async def test_release_gives_the_hold_back(client: httpx.AsyncClient) -> None:
    await make_account(client)
    credit = await grant(client, amount=100)
    await apply(client, "inv-1", [60])
    released = await client.post("/accounts/acc-1/credit_applications/inv-1/release")
    assert released.json()["status"] == "RELEASED"
    after = await details(client, credit["id"])
    assert (after["holdAmount"], after["consumedAmount"]) == (0, 0)
    assert lines(after) == [("CREDITED", 100)]
    assert (await balance(client))["runningBalance"] == 100


async def test_applying_a_held_invoice_again_replaces_it(client: httpx.AsyncClient) -> None:
    await make_account(client)
    credit = await grant(client, amount=100)
    await apply(client, "inv-1", [80])
    replaced = await apply(client, "inv-1", [90])
    assert replaced.json()["appliedAmount"] == 90
    assert (await details(client, credit["id"]))["holdAmount"] == 90
    again = await apply(client, "inv-1", [90])
    assert again.json()["appliedAmount"] == 90
    await client.post("/accounts/acc-1/credit_applications/inv-1/release")
    reheld = await apply(client, "inv-1", [10])
    assert reheld.json()["status"] == "HELD"
    assert (await details(client, credit["id"]))["holdAmount"] == 10


async def test_debit_repeats_are_idempotent_and_changes_conflict(
    client: httpx.AsyncClient,
) -> None:
    await make_account(client)
    credit = await grant(client, amount=100)
    first = await apply(client, "inv-1", [40], mode="DEBIT")
    assert first.json()["status"] == "DEBITED"
    repeat = await apply(client, "inv-1", [40], mode="DEBIT")
    assert repeat.json() == first.json()
    changed = await apply(client, "inv-1", [41], mode="DEBIT")
    assert changed.status_code == 409
    assert "already debited" in changed.json()["message"]
    hold_after = await apply(client, "inv-1", [40], mode="HOLD")
    assert hold_after.status_code == 409
    assert (await details(client, credit["id"]))["consumedAmount"] == 40


async def test_capture_and_release_state_machine(client: httpx.AsyncClient) -> None:
    await make_account(client)
    await grant(client, amount=100)
    base = "/accounts/acc-1/credit_applications"
    await apply(client, "inv-d", [10], mode="DEBIT")
    assert (await client.post(f"{base}/inv-d/capture")).json()["status"] == "DEBITED"
    assert (await client.post(f"{base}/inv-d/release")).status_code == 409
    await apply(client, "inv-r", [10])
    assert (await client.post(f"{base}/inv-r/release")).json()["status"] == "RELEASED"
    assert (await client.post(f"{base}/inv-r/release")).json()["status"] == "RELEASED"
    assert (await client.post(f"{base}/inv-r/capture")).status_code == 409
    missing = await client.post(f"{base}/nope/capture")
    assert missing.status_code == 404
    assert "nope" in missing.json()["message"]
    assert (await client.get(f"{base}/inv-d")).json()["status"] == "DEBITED"
    assert (await balance(client))["availableBalance"] == 90


async def test_full_consumption_marks_the_credit_consumed(client: httpx.AsyncClient) -> None:
    await make_account(client)
    credit = await grant(client, amount=25)
    response = await apply(client, "inv-1", [30], mode="DEBIT")
    assert (response.json()["appliedAmount"], response.json()["remainingAmount"]) == (25, 5)
    after = await details(client, credit["id"])
    assert after["status"] == "CONSUMED"
    void = await client.post(f"/credits/{credit['id']}/void")
    assert void.status_code == 400
    assert "consumed" in void.json()["message"]
    empty = await apply(client, "inv-2", [5], mode="DEBIT")
    assert (empty.json()["appliedAmount"], empty.json()["lineItems"][0]["allocations"]) == (0, [])


async def test_void_keeps_holds_and_a_later_capture_debits_them(
    client: httpx.AsyncClient,
) -> None:
    await make_account(client)
    credit = await grant(client, amount=100)
    await apply(client, "inv-1", [30])
    voided = await client.post(f"/credits/{credit['id']}/void")
    assert voided.json()["status"] == "VOIDED"
    assert voided.json()["holdAmount"] == 30
    assert lines(await details(client, credit["id"])) == [("CREDITED", 100), ("VOIDED", 70)]
    await client.post("/accounts/acc-1/credit_applications/inv-1/capture")
    after = await details(client, credit["id"])
    assert (after["status"], after["consumedAmount"], after["holdAmount"]) == ("VOIDED", 30, 0)
    assert lines(after)[-1] == ("DEBITED", 30)


async def test_release_after_void_moves_the_hold_into_voided(client: httpx.AsyncClient) -> None:
    await make_account(client)
    credit = await grant(client, amount=100)
    await apply(client, "inv-1", [30])
    await client.post(f"/credits/{credit['id']}/void")
    await client.post("/accounts/acc-1/credit_applications/inv-1/release")
    after = await details(client, credit["id"])
    assert lines(after) == [("CREDITED", 100), ("VOIDED", 70), ("VOIDED", 30)]
    assert after["holdAmount"] == 0


async def test_expiry_with_a_hold(client: httpx.AsyncClient, clock: FixedClock) -> None:
    await make_account(client)
    credit = await grant(client, amount=100, effectiveUntil="2026-11-30")
    other = await grant(client, amount=100, effectiveUntil="2026-11-30")
    await apply(client, "inv-1", [100, 40])
    clock.advance(timedelta(days=7))
    expired = await details(client, credit["id"])
    assert (expired["status"], expired["holdAmount"]) == ("EXPIRED", 100)
    assert lines(expired) == [("CREDITED", 100)]
    assert lines(await details(client, other["id"])) == [("CREDITED", 100), ("EXPIRED", 60)]
    bal = await balance(client)
    assert (bal["activeCredits"], bal["runningBalance"]) == (0, 0)
    released = await client.post("/accounts/acc-1/credit_applications/inv-1/release")
    assert released.status_code == 200
    assert lines(await details(client, credit["id"]))[-1] == ("EXPIRED", 100)
    assert lines(await details(client, other["id"]))[-1] == ("EXPIRED", 40)


async def test_capture_after_expiry_still_debits(
    client: httpx.AsyncClient, clock: FixedClock
) -> None:
    await make_account(client)
    credit = await grant(client, amount=100, effectiveUntil="2026-11-30")
    await apply(client, "inv-1", [70])
    clock.advance(timedelta(days=7))
    await client.post("/accounts/acc-1/credit_applications/inv-1/capture")
    after = await details(client, credit["id"])
    assert (after["status"], after["consumedAmount"]) == ("EXPIRED", 70)
    assert lines(after) == [("CREDITED", 100), ("EXPIRED", 30), ("DEBITED", 70)]


async def test_as_of_picks_the_credits_in_effect_that_day(client: httpx.AsyncClient) -> None:
    await make_account(client)
    future = await grant(client, amount=50, effectiveFrom="2026-12-01", priority=0)
    now = await grant(client, amount=50, priority=1)
    today = await apply(client, "inv-now", [10], mode="DEBIT")
    assert today.json()["lineItems"][0]["allocations"][0]["creditId"] == now["id"]
    later = await apply(client, "inv-later", [10], mode="DEBIT", asOf="2026-12-05")
    assert later.json()["asOf"] == "2026-12-05"
    assert later.json()["lineItems"][0]["allocations"][0]["creditId"] == future["id"]


async def test_applications_belong_to_their_organization(
    client: httpx.AsyncClient, db: Database
) -> None:
    await make_account(client)
    await grant(client, amount=10)
    await apply(client, "inv-1", [5])
    stranger = {"Authorization": f"Bearer {await new_key(db)}"}
    base = "/accounts/acc-1/credit_applications"
    assert (await client.get(f"{base}/inv-1", headers=stranger)).status_code == 404
    assert (await client.post(f"{base}/inv-1/capture", headers=stranger)).status_code == 404
    assert (await client.get(base, headers=stranger)).status_code == 404
    response = await client.post(
        base,
        headers=stranger,
        json={
            "invoiceId": "inv-2",
            "mode": "DEBIT",
            "lineItems": [{"entityId": "um.x", "entityType": "USAGE_METER_RATE_CARD", "amount": 1}],
        },
    )
    assert response.status_code == 404


async def test_bad_application_input_is_400_and_changes_nothing(
    client: httpx.AsyncClient,
) -> None:
    await make_account(client)
    credit = await grant(client, amount=10)
    for amounts, extra in (([-1], {}), ([1], {"mode": "SPEND"}), ([1], {"asOf": "soon"})):
        response = await apply(client, "inv-1", amounts, **extra)
        assert response.status_code == 400, response.text
        assert set(response.json()) == {"message"}
    no_items = await client.post(
        "/accounts/acc-1/credit_applications",
        json={"invoiceId": "inv-1", "mode": "HOLD", "lineItems": []},
    )
    assert no_items.status_code == 400
    assert (await details(client, credit["id"]))["holdAmount"] == 0
    assert (await client.get("/accounts/acc-1/credit_applications")).json()["data"] == []


async def test_list_pages_through_applications(client: httpx.AsyncClient) -> None:
    await make_account(client)
    await grant(client, amount=100)
    for index in range(5):
        await apply(client, f"inv-{index}", [1])
    seen: list[str] = []
    token = None
    while True:
        params: dict[str, object] = {"pageSize": 2}
        if token:
            params["nextToken"] = token
        page = (await client.get("/accounts/acc-1/credit_applications", params=params)).json()
        seen += [a["invoiceId"] for a in page["data"]]
        token = page.get("nextToken")
        if not token:
            break
    assert seen == [f"inv-{i}" for i in range(5)]


async def test_a_debit_reads_past_the_first_batch_of_credits_in_order(
    client: httpx.AsyncClient,
) -> None:
    await make_account(client)
    granted = []
    for index in range(20):
        credit = await grant(client, amount=1, priority=19 - index)
        granted.append(credit["id"])
    response = await apply(client, "inv-1", [15.5], mode="DEBIT")
    allocations = response.json()["lineItems"][0]["allocations"]
    expected = list(reversed(granted))[:16]
    assert [a["creditId"] for a in allocations] == expected
    assert [a["amount"] for a in allocations] == [1] * 15 + [0.5]
    assert response.json()["remainingAmount"] == 0
