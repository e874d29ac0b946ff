"""Customers and accounts."""

import asyncio

import httpx
from togai_client.models import Account, AccountsBillingInformation, Customer

from tests.helpers import make_account


async def test_customer_with_inline_account(client: httpx.AsyncClient) -> None:
    account = await make_account(client, "acc-1")
    assert account["invoiceCurrency"] == "USD"
    assert account["customerId"] == "cust-acc-1"
    customer = (await client.get("/customers/cust-acc-1")).json()
    assert customer["name"] == "Customer One"
    assert customer["status"] == "ACTIVE"
    assert customer["billingAddress"] == "1 Main St, Springfield, US"
    fetched = (await client.get("/accounts/acc-1")).json()
    assert fetched == account


async def test_account_for_existing_customer(client: httpx.AsyncClient) -> None:
    await make_account(client, "acc-1")
    response = await client.post(
        "/accounts",
        json={
            "id": "acc-2",
            "name": "Second",
            "customerId": "cust-acc-1",
            "invoiceCurrency": "EUR",
            "metadata": {"vat": "X1"},
        },
    )
    assert response.status_code == 201
    body = response.json()
    assert (body["invoiceCurrency"], body["metadata"]) == ("EUR", {"vat": "X1"})
    missing = await client.post(
        "/accounts", json={"id": "acc-3", "name": "Third", "customerId": "nobody"}
    )
    assert missing.status_code == 404
    assert missing.json() == {"message": "customer 'nobody' was not found"}


async def test_duplicate_ids_are_409(client: httpx.AsyncClient) -> None:
    await make_account(client, "acc-1")
    again = await client.post(
        "/customers",
        json={"id": "cust-acc-1", "name": "Dup", "primaryEmail": "d@x.test", "address": {}},
    )
    assert again.status_code == 409
    assert again.json() == {
        "message": "a customer with id 'cust-acc-1' already exists; choose another id"
    }
    dup_account = await client.post(
        "/accounts", json={"id": "acc-1", "name": "Dup account", "customerId": "cust-acc-1"}
    )
    assert dup_account.status_code == 409
    assert dup_account.json() == {
        "message": "an account with id 'acc-1' already exists; choose another id"
    }


async def test_bad_account_fields_are_400(client: httpx.AsyncClient) -> None:
    await make_account(client, "acc-1")
    for extra in ({"invoiceCurrency": "usd"}, {"name": "ab"}, {"aliases": ["x-alias"]}):
        body = {"id": "acc-9", "name": "Nine", "customerId": "cust-acc-1", **extra}
        response = await client.post("/accounts", json=body)
        assert response.status_code == 400, extra
        assert next(iter(extra)) in response.json()["message"]
    assert (await client.get("/accounts/acc-9")).status_code == 404


async def test_lists_page_through(client: httpx.AsyncClient) -> None:
    for index in range(5):
        await make_account(client, f"acc-{index}")
    seen: list[str] = []
    token = None
    while True:
        params: dict[str, str | int] = {"pageSize": 2}
        if token:
            params["nextToken"] = token
        page = (await client.get("/accounts", params=params)).json()
        seen += [a["id"] for a in page["data"]]
        token = page.get("nextToken")
        if not token:
            break
    assert seen == [f"acc-{i}" for i in range(5)]
    customers = (await client.get("/customers", params={"pageSize": 50})).json()
    assert [c["id"] for c in customers["data"]] == [f"cust-acc-{i}" for i in range(5)]
    assert "nextToken" not in customers


async def test_billing_information_is_togais_shape_or_a_400(client: httpx.AsyncClient) -> None:
    """Whatever is kept is answered back, so it must be what togai-client's
    AccountsBillingInformation can read: lists of e-mail addresses, nothing else."""
    await make_account(client, "acc-1")
    kept = {"emailRecipients": ["a@x.test"], "additionalEmailRecipients": ["b@x.test"]}
    changed = await client.patch("/accounts/acc-1", json={"billingInformation": kept})
    assert changed.status_code == 200, changed.text
    assert changed.json()["billingInformation"] == kept
    assert AccountsBillingInformation.from_dict(changed.json()["billingInformation"]) is not None
    for bad, words in (
        ({"emailRecipients": "a@x.test"}, "billingInformation.emailRecipients: "),
        ({"emailRecipients": [5]}, "billingInformation.emailRecipients[0]: "),
        ({"emailRecipients": ["x" * 321]}, "billingInformation.emailRecipients[0]: "),
        ({"cc": ["a@x.test"]}, "billingInformation.cc: is not a field"),
    ):
        for method, path, body in (
            ("PATCH", "/accounts/acc-1", {"billingInformation": bad}),
            (
                "POST",
                "/accounts",
                {
                    "id": "acc-9",
                    "name": "Nine",
                    "customerId": "cust-acc-1",
                    **{"billingInformation": bad},
                },
            ),
        ):
            refused = await client.request(method, path, json=body)
            assert refused.status_code == 400, (method, bad, refused.text)
            assert refused.json()["message"].startswith(words), refused.text
    assert (await client.get("/accounts/acc-1")).json()["billingInformation"] == kept
    assert (await client.get("/accounts/acc-9")).status_code == 404


async def test_tags_are_kept_in_lowercase_as_togai_keeps_them(client: httpx.AsyncClient) -> None:
    await make_account(client, "acc-1")
    changed = await client.patch("/accounts/acc-1", json={"tags": ["Enterprise", "EU-West"]})
    assert changed.status_code == 200, changed.text
    assert changed.json()["tags"] == ["enterprise", "eu-west"]
    created = await client.post(
        "/accounts",
        json={"id": "acc-2", "name": "Two", "customerId": "cust-acc-1", "tags": ["VIP"]},
    )
    assert created.status_code == 201, created.text
    assert (await client.get("/accounts/acc-2")).json()["tags"] == ["vip"]


async def test_a_customer_is_never_archived_with_an_account_made_meanwhile(
    client: httpx.AsyncClient,
) -> None:
    """A delete of a customer and a new account for it, at once: either the account is made
    and the delete refused (409), or the customer is archived and the account refused (404)."""
    rounds = 12
    for n in range(rounds):
        await make_account(client, f"acc-{n}")
        await client.delete(f"/accounts/acc-{n}")
    outcomes = await asyncio.gather(
        *(
            asyncio.gather(
                client.delete(f"/customers/cust-acc-{n}"),
                client.post(
                    "/accounts",
                    json={
                        "id": f"new-{n}",
                        "name": "Made meanwhile",
                        "customerId": f"cust-acc-{n}",
                    },
                ),
            )
            for n in range(rounds)
        )
    )
    for n, (deleted, made) in enumerate(outcomes):
        assert (deleted.status_code, made.status_code) in ((200, 404), (409, 201)), (
            deleted.text,
            made.text,
        )
        customer = await client.get(f"/customers/cust-acc-{n}")
        account = await client.get(f"/accounts/new-{n}")
        assert (customer.status_code, account.status_code) == (
            (404, 404) if deleted.status_code == 200 else (200, 200)
        )


async def test_settings_are_togais_entity_settings_or_a_400(client: httpx.AsyncClient) -> None:
    """Settings are answered back with the account (and the customer made with it), so only
    what togai-client's CreateEntitySetting reads is kept."""
    setting = {
        "id": "s-1",
        "value": "30",
        "namespace": "billing",
        "name": "due",
        "dataType": "NUMERIC",
    }
    made = await client.post(
        "/customers",
        json={
            "id": "cust-1",
            "name": "Customer One",
            "primaryEmail": "c@x.test",
            "address": {},
            "settings": [setting],
            "account": {"id": "acc-1", "name": "One", "settings": [setting]},
        },
    )
    assert made.status_code == 201, made.text
    assert made.json()["settings"] == [setting]
    account = (await client.get("/accounts/acc-1")).json()
    assert account["settings"] == [setting]
    assert Account.from_dict(account) is not None
    for bad, words in (
        ({**setting, "dataType": "DATE"}, "settings[0].dataType: "),
        ({"foo": 1}, "settings[0]."),
        ({**setting, "value": 30}, "settings[0].value: "),
    ):
        refused = await client.post(
            "/accounts",
            json={"id": "acc-9", "name": "Nine", "customerId": "cust-1", "settings": [bad]},
        )
        assert refused.status_code == 400, (bad, refused.text)
        assert refused.json()["message"].startswith(words), refused.text
        refused = await client.post(
            "/customers",
            json={
                "id": "cust-9",
                "name": "Nine",
                "primaryEmail": "c@x.test",
                "address": {},
                "settings": [bad],
            },
        )
        assert refused.status_code == 400, (bad, refused.text)
        assert refused.json()["message"].startswith(words), refused.text


async def test_an_address_whose_billing_address_passes_1000_characters_is_a_400(
    client: httpx.AsyncClient,
) -> None:
    """Togai's Customer.billingAddress is at most 1000 characters, and it is the address's
    parts joined with ", ": an address that would make it longer is refused, on create and on
    update, so that every customer answered is one togai-client can read."""
    await make_account(client, "acc-1")
    widest = {"line1": "x" * 495, "city": "y" * 500}  # with ", z": 495 + 2 + 500 + 3 = 1000
    kept = await client.patch("/customers/cust-acc-1", json={"address": {**widest, "state": "z"}})
    assert kept.status_code == 200, kept.text
    assert len(kept.json()["billingAddress"]) == 1000
    assert Customer.from_dict(kept.json()) is not None
    too_long = {**widest, "state": "zz"}
    for method, path, body in (
        ("PATCH", "/customers/cust-acc-1", {"address": too_long}),
        (
            "POST",
            "/customers",
            {"id": "cust-9", "name": "Nine", "primaryEmail": "n@x.test", "address": too_long},
        ),
    ):
        refused = await client.request(method, path, json=body)
        assert refused.status_code == 400, refused.text
        assert refused.json() == {
            "message": "address: its parts joined (the billingAddress) come to 1001 characters; "
            "Togai allows at most 1000, so shorten them"
        }
    assert (await client.get("/customers/cust-acc-1")).json() == kept.json()
