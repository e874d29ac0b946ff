"""Conformance of the Wallet API and the rest of the customer and account lifecycle: a real
`drawdown serve` process driven only through Togai's official client (`WalletApi`,
`CustomersApi.update_customer` / `delete_customer`, `AccountsApi.update_account` /
`delete_account`). Every answer must deserialize into the client's own models, and the values
must be the ones docs/wallet.md promises."""

import json
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
import togai_client
from togai_client.exceptions import ApiException
from togai_client.models import (
    AccountsBillingInformation,
    Address,
    BaseSuccessResponse,
    CreateAccountRequest,
    Customer,
    TopupWalletRequest,
    UpdateAccountRequest,
    UpdateCustomerRequest,
    UpdateWalletRequest,
    WalletBalanceResponse,
    WalletEntriesPaginatedResponse,
    WalletEntry,
    WalletStatus,
)

from tests.live_server import create_key, live_server
from tests.test_conformance import (
    Org,
    Togai,
    api_error,
    connect,
    customer_with_account,
    grant_one,
    unique,
)

# The server, keys and clients, as in tests/test_conformance.py -----------------------------------


@pytest.fixture(scope="module")
def base_url(database_url: str) -> Iterator[str]:
    with live_server(database_url) as server:
        yield server.base_url


@pytest.fixture(scope="module")
def org(database_url: str) -> Org:
    name = unique("conf-wallet")
    return Org(name, create_key(database_url, name), create_key(database_url, name, True))


def _client(base_url: str, api_key: str) -> Iterator[Togai]:
    api = connect(base_url, api_key)
    with api.client:
        yield api


@pytest.fixture(scope="module")
def togai(base_url: str, org: Org) -> Iterator[Togai]:
    yield from _client(base_url, org.key)


@pytest.fixture(scope="module")
def reader(base_url: str, org: Org) -> Iterator[Togai]:
    yield from _client(base_url, org.read_only_key)


@pytest.fixture(scope="module")
def stranger(base_url: str, database_url: str) -> Iterator[Togai]:
    yield from _client(base_url, create_key(database_url, unique("stranger")))


@pytest.fixture(scope="module")
def wallets(togai: Togai) -> togai_client.WalletApi:
    return togai_client.WalletApi(togai.client)


def refusal(status: int, call: Callable[[], object]) -> str:
    """An error the client's map of that call does not list (409 anywhere; every error of
    update_wallet_for_account, whose map has only 200): the client raises an ApiException
    without reading the body into a model; the body is still `{"message": ...}` alone."""
    with pytest.raises(ApiException) as raised:
        call()
    error = raised.value
    assert error.status == status, (error.status, error.body)
    body = json.loads(error.body)
    assert list(body) == ["message"], body
    return str(body["message"])


def apply_credits(
    base_url: str, org: Org, account_id: str, invoice_id: str, mode: str, amount: int
) -> dict[str, Any]:
    """drawdown's own applications API (the client has none): one fixed-fee line item."""
    body = {
        "invoiceId": invoice_id,
        "mode": mode,
        "lineItems": [
            {"entityId": "ff.seat", "entityType": "FIXED_FEE_RATE_CARD", "amount": amount}
        ],
    }
    answer = httpx.post(
        f"{base_url}/accounts/{account_id}/credit_applications",
        json=body,
        headers={"Authorization": f"Bearer {org.key}"},
    )
    assert answer.status_code == 200, answer.text
    return dict(answer.json())


def key(value: str) -> dict[str, str]:
    return {"Idempotency-Key": value}


def every_entry(wallets: togai_client.WalletApi, account_id: str) -> list[WalletEntry]:
    found: list[WalletEntry] = []
    token: str | None = None
    while True:
        page = wallets.wallet_entries_for_account(account_id, page_size=2, next_token=token)
        assert isinstance(page, WalletEntriesPaginatedResponse)
        assert all(isinstance(entry, WalletEntry) for entry in page.data)
        found += page.data
        token = page.next_token
        if token is None:
            return found


def test_top_up_read_and_list_entries_through_the_wallet_api(
    togai: Togai, wallets: togai_client.WalletApi
) -> None:
    account_id = unique("acc")
    customer_with_account(togai, account_id, currency="EUR")
    message = api_error(404, lambda: wallets.wallet_balance_for_account(account_id))
    assert message == f"account '{account_id}' has no wallet; a top-up creates it"
    made = wallets.top_up_wallet_for_account(
        account_id, TopupWalletRequest(topup_amount=500.25), _headers=key(unique("k"))
    )
    assert isinstance(made, WalletBalanceResponse)
    assert made.id.startswith("wallet.") and len(made.id.split(".")[1]) == 11
    assert (made.account_id, made.customer_id, made.credit_unit) == (
        account_id,
        f"cust-{account_id}",
        "EUR",
    )
    assert (made.balance, made.hold_amount, made.status) == (500.25, 0, WalletStatus.ACTIVE)
    assert abs(made.effective_from - datetime.now(UTC)) < timedelta(minutes=5)
    again = wallets.top_up_wallet_for_account(account_id, TopupWalletRequest(topup_amount=0.75))
    assert again.balance == 501
    read = wallets.wallet_balance_for_account(account_id)
    assert isinstance(read, WalletBalanceResponse) and read == again
    entries = every_entry(wallets, account_id)
    assert [(e.transaction_type, e.status, e.amount, e.closing_balance) for e in entries] == [
        ("CREDITED", "COMPLETED", 500.25, 500.25),
        ("CREDITED", "COMPLETED", 0.75, 501),
    ]
    assert all(e.wallet_id == made.id and e.entity_id is None for e in entries)


def test_an_idempotency_key_answers_again_and_another_top_up_with_it_is_409(
    togai: Togai, wallets: togai_client.WalletApi
) -> None:
    account_id = unique("acc")
    customer_with_account(togai, account_id)
    used = unique("key")
    first = wallets.top_up_wallet_for_account(
        account_id, TopupWalletRequest(topup_amount=10), _headers=key(used)
    )
    again = wallets.top_up_wallet_for_account(
        account_id, TopupWalletRequest(topup_amount=10), _headers=key(used)
    )
    assert again == first and first.balance == 10
    message = refusal(
        409,
        lambda: wallets.top_up_wallet_for_account(
            account_id, TopupWalletRequest(topup_amount=11), _headers=key(used)
        ),
    )
    assert f"Idempotency-Key '{used}' was already used for a different top-up" in message
    assert len(every_entry(wallets, account_id)) == 1
    tiny = TopupWalletRequest(topup_amount=0.00000000001)
    api_error(400, lambda: wallets.top_up_wallet_for_account(account_id, tiny))
    one = TopupWalletRequest(topup_amount=1)
    api_error(404, lambda: wallets.top_up_wallet_for_account(unique("nobody"), one))


def test_update_the_wallet_and_the_wallet_behind_the_credits(
    togai: Togai,
    wallets: togai_client.WalletApi,
    base_url: str,
    org: Org,
) -> None:
    account_id = unique("acc")
    customer_with_account(togai, account_id)
    message = refusal(
        404,
        lambda: wallets.update_wallet_for_account(
            account_id, UpdateWalletRequest(status=WalletStatus.INACTIVE)
        ),
    )
    assert message == f"account '{account_id}' has no wallet; a top-up creates it"
    wallets.top_up_wallet_for_account(account_id, TopupWalletRequest(topup_amount=40))
    later = datetime(2030, 1, 1, tzinfo=UTC)
    changed = wallets.update_wallet_for_account(
        account_id, UpdateWalletRequest(status=WalletStatus.INACTIVE, effective_from=later)
    )
    assert isinstance(changed, WalletBalanceResponse)
    assert (changed.status, changed.effective_from) == (WalletStatus.INACTIVE, later)
    back = wallets.update_wallet_for_account(
        account_id,
        UpdateWalletRequest(status=WalletStatus.ACTIVE, effective_from=datetime(2020, 1, 1)),
    )
    assert back.status == WalletStatus.ACTIVE
    assert back.effective_from == datetime(2020, 1, 1, tzinfo=UTC)  # no offset: UTC
    grant_one(togai, account_id, 25)
    applied = apply_credits(base_url, org, account_id, "inv-1", "HOLD", 50)
    assert applied["lineItems"][0]["allocations"][1] == {"walletId": back.id, "amount": 25}
    wallet = wallets.wallet_balance_for_account(account_id)
    assert (wallet.balance, wallet.hold_amount) == (15, 25)
    [_, hold] = every_entry(wallets, account_id)
    assert (hold.transaction_type, hold.status, hold.entity_id, hold.amount) == (
        "DEBITED",
        "ON_HOLD",
        "inv-1",
        25,
    )
    assert hold.closing_balance == 15


def test_update_and_delete_a_customer(togai: Togai) -> None:
    account_id = unique("acc")
    customer_with_account(togai, account_id)
    customer_id = f"cust-{account_id}"
    address = Address(line1="9 High St", city="Bath", country="GB")
    changed = togai.customers.update_customer(
        customer_id, UpdateCustomerRequest(name="Renamed Customer", address=address)
    )
    assert isinstance(changed, Customer)
    assert (changed.name, changed.address, changed.billing_address) == (
        "Renamed Customer",
        address,
        "9 High St, Bath, GB",
    )
    assert changed.primary_email == "billing@example.test"
    assert togai.customers.get_customer(customer_id) == changed
    message = refusal(409, lambda: togai.customers.delete_customer(customer_id))
    assert (
        message == f"customer '{customer_id}' still has accounts '{account_id}'; delete them first"
    )
    deleted = togai.accounts.delete_account(account_id)
    assert isinstance(deleted, BaseSuccessResponse) and deleted.success is True
    gone = togai.customers.delete_customer(customer_id)
    assert isinstance(gone, BaseSuccessResponse) and gone.success is True
    api_error(404, lambda: togai.customers.get_customer(customer_id))
    api_error(404, lambda: togai.customers.delete_customer(customer_id))
    api_error(404, lambda: togai.customers.update_customer(customer_id, UpdateCustomerRequest()))


def test_update_an_account_and_its_currency_until_money_exists(
    togai: Togai, wallets: togai_client.WalletApi
) -> None:
    account_id = unique("acc")
    customer_with_account(togai, account_id)
    changed = togai.accounts.update_account(
        account_id,
        UpdateAccountRequest(
            name="Renamed account",
            invoice_currency="EUR",
            net_term_days=30,
            primary_email="acc@example.test",
            billing_information=AccountsBillingInformation(email_recipients=["a@example.test"]),
            metadata={"vat": "GB1"},
            tags=["enterprise"],
            status="DRAFT",
        ),
    )
    assert (changed.name, changed.invoice_currency, changed.net_term_days, changed.status) == (
        "Renamed account",
        "EUR",
        30,
        "DRAFT",
    )
    assert changed.billing_information == AccountsBillingInformation(
        email_recipients=["a@example.test"]
    )
    assert (changed.metadata, changed.tags) == ({"vat": "GB1"}, ["enterprise"])
    assert togai.accounts.get_account(account_id) == changed
    wallets.top_up_wallet_for_account(account_id, TopupWalletRequest(topup_amount=1))
    message = refusal(
        409,
        lambda: togai.accounts.update_account(
            account_id, UpdateAccountRequest(invoice_currency="USD")
        ),
    )
    assert message == (
        f"invoiceCurrency cannot change from EUR to USD: account '{account_id}' has a wallet in "
        "EUR; create a new account to invoice in USD"
    )
    api_error(404, lambda: togai.accounts.update_account(unique("nobody"), UpdateAccountRequest()))


def test_delete_an_account_only_once_no_money_remains(
    togai: Togai,
    wallets: togai_client.WalletApi,
    base_url: str,
    org: Org,
) -> None:
    account_id = unique("acc")
    customer_with_account(togai, account_id)
    credit = grant_one(togai, account_id, 5)
    wallets.top_up_wallet_for_account(account_id, TopupWalletRequest(topup_amount=2))
    message = refusal(409, lambda: togai.accounts.delete_account(account_id))
    assert message == (
        f"account '{account_id}' still holds money and was not deleted: credits with 5 left (0 of "
        "it held): void or spend them; a wallet with a balance of 2 and 0 held: spend its balance "
        "with a DEBIT application"
    )
    togai.credits.void_credit(credit.id)
    assert (
        wallets.top_up_wallet_for_account(account_id, TopupWalletRequest(topup_amount=1)).balance
        == 3
    )
    apply_credits(base_url, org, account_id, "inv-all", "DEBIT", 3)
    assert wallets.wallet_balance_for_account(account_id).balance == 0
    deleted = togai.accounts.delete_account(account_id)
    assert isinstance(deleted, BaseSuccessResponse) and deleted.success is True
    for call in (
        lambda: togai.accounts.get_account(account_id),
        lambda: togai.accounts.delete_account(account_id),
        lambda: togai.credits.credit_balance_for_account(account_id),
        lambda: wallets.wallet_balance_for_account(account_id),
        lambda: wallets.wallet_entries_for_account(account_id),
    ):
        assert api_error(404, call) == f"account '{account_id}' was not found"
    assert togai.credits.get_credit_details(credit.id).id == credit.id  # the ledger is kept
    refusal(
        409,
        lambda: togai.accounts.create_account(
            CreateAccountRequest(
                id=account_id, name="Same id again", customer_id=f"cust-{account_id}"
            )
        ),
    )


def test_every_new_call_keeps_tenants_apart_and_read_only_keys_out(
    togai: Togai,
    reader: Togai,
    stranger: Togai,
    wallets: togai_client.WalletApi,
) -> None:
    account_id = unique("acc")
    customer_id = f"cust-{account_id}"
    customer_with_account(togai, account_id)
    wallets.top_up_wallet_for_account(account_id, TopupWalletRequest(topup_amount=3))
    for api, status in ((reader, 403), (stranger, 404)):
        for n, call in enumerate(calls_of(api, account_id, customer_id, writes=True)):
            # update_wallet_for_account (the second) maps no error status to a model
            (refusal if n == 1 else api_error)(status, call)
        for call in calls_of(api, account_id, customer_id, writes=False):
            if status == 404:
                api_error(404, call)
            else:
                assert call() is not None
    wallet = wallets.wallet_balance_for_account(account_id)
    assert (wallet.balance, wallet.status) == (3, WalletStatus.ACTIVE)
    assert togai.accounts.get_account(account_id).name == f"Account {account_id}"


def calls_of(
    api: Togai, account_id: str, customer_id: str, *, writes: bool
) -> list[Callable[[], object]]:
    theirs = togai_client.WalletApi(api.client)
    if not writes:
        return [
            lambda: theirs.wallet_balance_for_account(account_id),
            lambda: theirs.wallet_entries_for_account(account_id),
        ]
    return [
        lambda: theirs.top_up_wallet_for_account(account_id, TopupWalletRequest(topup_amount=1)),
        lambda: theirs.update_wallet_for_account(
            account_id, UpdateWalletRequest(status=WalletStatus.INACTIVE)
        ),
        lambda: api.customers.update_customer(customer_id, UpdateCustomerRequest(name="Mine")),
        lambda: api.customers.delete_customer(customer_id),
        lambda: api.accounts.update_account(account_id, UpdateAccountRequest(name="Mine")),
        lambda: api.accounts.delete_account(account_id),
    ]
