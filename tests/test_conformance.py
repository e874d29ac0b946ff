"""Conformance: a real `drawdown serve` process, driven only through Togai's official Python
client (`togai-client`). Every response must deserialize into the client's own models, and the
values that come back must be the ones the credits rules promise."""

import json
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest
import togai_client
from togai_client.exceptions import ApiException
from togai_client.models import (
    Account,
    Address,
    CreateAccountRequest,
    CreateAccountRequestWithoutCustomerId,
    CreateCreditRequest,
    CreateCreditResponse,
    CreateCustomerRequest,
    CreateCustomerResponse,
    Credit,
    CreditBalanceResponse,
    CreditDetailsResponse,
    CreditRequest,
    Customer,
    ErrorResponse,
    ListCreditsResponse,
)

from tests.live_server import create_key, live_server

# The server reads the real clock, so every date is relative to today (UTC).
TODAY = datetime.now(UTC).date()
PAST = TODAY - timedelta(days=10)
FUTURE = TODAY + timedelta(days=30)
LATER = TODAY + timedelta(days=365)


# The server, keys and clients -------------------------------------------------------------------


@pytest.fixture(scope="module")
def base_url(database_url: str) -> Iterator[str]:
    with live_server(database_url) as server:
        yield server.base_url


@dataclass(frozen=True)
class Togai:
    """The official client's APIs, all sharing one authenticated `ApiClient`."""

    client: togai_client.ApiClient
    customers: togai_client.CustomersApi
    accounts: togai_client.AccountsApi
    credits: togai_client.CreditsApi


def connect(base_url: str, key: str) -> Togai:
    config = togai_client.Configuration(host=base_url, access_token=key)
    client = togai_client.ApiClient(config)
    return Togai(
        client,
        togai_client.CustomersApi(client),
        togai_client.AccountsApi(client),
        togai_client.CreditsApi(client),
    )


@dataclass(frozen=True)
class Org:
    name: str
    key: str
    read_only_key: str


@pytest.fixture(scope="module")
def org(database_url: str) -> Org:
    name = f"conf-{uuid.uuid4().hex}"
    return Org(name, create_key(database_url, name), create_key(database_url, name, True))


@pytest.fixture(scope="module")
def togai(base_url: str, org: Org) -> Iterator[Togai]:
    api = connect(base_url, org.key)
    with api.client:
        yield api


@pytest.fixture(scope="module")
def reader(base_url: str, org: Org) -> Iterator[Togai]:
    api = connect(base_url, org.read_only_key)
    with api.client:
        yield api


# Builders ---------------------------------------------------------------------------------------


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:12]}"


ADDRESS = Address(line1="1 Main St", city="Springfield", postal_code="12345", country="US")


def customer_with_account(
    togai: Togai, account_id: str, currency: str | None = None
) -> CreateCustomerResponse:
    created = togai.customers.create_customer(
        CreateCustomerRequest(
            id=f"cust-{account_id}",
            name="Customer One",
            primary_email="billing@example.test",
            address=ADDRESS,
            account=CreateAccountRequestWithoutCustomerId(
                id=account_id, name=f"Account {account_id}", invoice_currency=currency
            ),
        )
    )
    assert isinstance(created, CreateCustomerResponse)
    assert created.account is not None
    return created


def credit_request(
    account_id: str, amount: float, effective_from: date = PAST, **extra: Any
) -> CreditRequest:
    return CreditRequest(
        account_id=account_id,
        purpose="PREPAID_CREDIT",
        effective_from=effective_from,
        credit_amount=amount,
        priority=1,
        **extra,
    )


def grant(togai: Togai, *requests: CreditRequest) -> list[Credit]:
    response = togai.credits.create_credit(CreateCreditRequest(credit_requests=list(requests)))
    assert isinstance(response, CreateCreditResponse)
    assert len(response.credits) == len(requests)
    return response.credits


def grant_one(togai: Togai, account_id: str, amount: float, **extra: Any) -> Credit:
    [credit] = grant(togai, credit_request(account_id, amount, **extra))
    return credit


def api_error(status: int, call: Callable[[], object]) -> str:
    """Make the call, expect an error with `status` and a body of `{"message": ...}` only."""
    with pytest.raises(ApiException) as raised:
        call()
    error = raised.value
    assert error.status == status, (error.status, error.body)
    assert error.body is not None
    body = json.loads(error.body)
    assert list(body) == ["message"], body
    message = body["message"]
    assert isinstance(message, str) and 0 < len(message) <= 500
    # the client read the error body into its own ErrorResponse model
    assert isinstance(error.data, ErrorResponse), error.data
    assert error.data.message == message
    return message


def all_credit_ids(api: Togai, **filters: Any) -> list[str]:
    """Every credit id through `list_credits`, two per page."""
    ids: list[str] = []
    token: str | None = None
    while True:
        page = api.credits.list_credits(page_size=2, next_token=token, **filters)
        assert isinstance(page, ListCreditsResponse)
        assert len(page.data) <= 2
        ids += [credit.id for credit in page.data]
        token = page.next_token
        if token is None:
            return ids
        assert page.data, "a page with a nextToken must not be empty"


# Customers and accounts -------------------------------------------------------------------------


def test_create_customer_with_an_inline_account_answers_201(togai: Togai) -> None:
    customer_id = unique("cust")
    account_id = unique("acc")
    response = togai.customers.create_customer_with_http_info(
        CreateCustomerRequest(
            id=customer_id,
            name="Ada Lovelace",
            primary_email="ada@example.test",
            address=ADDRESS,
            account=CreateAccountRequestWithoutCustomerId(id=account_id, name="Ada's account"),
        )
    )
    assert response.status_code == 201
    created = response.data
    assert isinstance(created, CreateCustomerResponse)
    assert created.id == customer_id
    assert created.togai_customer_id == customer_id
    assert created.name == "Ada Lovelace"
    assert created.primary_email == "ada@example.test"
    assert created.billing_address == "1 Main St, Springfield, 12345, US"
    assert created.address == ADDRESS
    account = created.account
    assert isinstance(account, Account)
    assert account.id == account_id
    assert account.togai_account_id == account_id
    assert account.name == "Ada's account"
    assert account.customer_id == customer_id
    assert account.togai_customer_id == customer_id
    assert account.invoice_currency == "USD"
    assert account.status == "ACTIVE"

    customer = togai.customers.get_customer(customer_id)
    assert isinstance(customer, Customer)
    assert customer.id == customer_id
    assert customer.togai_customer_id == customer_id
    assert customer.name == "Ada Lovelace"
    assert customer.primary_email == "ada@example.test"
    assert customer.billing_address == "1 Main St, Springfield, 12345, US"
    assert customer.address == ADDRESS
    assert customer.status == "ACTIVE"
    assert customer.created_at.tzinfo is not None
    assert customer.created_at == customer.updated_at
    assert abs(datetime.now(UTC) - customer.created_at) < timedelta(minutes=5)


def test_customers_page_through_with_page_size_and_next_token(togai: Togai) -> None:
    mine = [unique("cust") for _ in range(3)]
    for customer_id in mine:
        togai.customers.create_customer(
            CreateCustomerRequest(
                id=customer_id,
                name="Paged customer",
                primary_email="p@example.test",
                address=ADDRESS,
            )
        )
    seen: list[str] = []
    token: str | None = None
    pages = 0
    while True:
        page = togai.customers.get_customers(page_size=2, next_token=token)
        pages += 1
        assert page.data is not None and len(page.data) <= 2
        assert page.context is not None
        assert (page.context.page_size, page.context.sort_order) == (2, "ASC")
        assert all(isinstance(customer, Customer) for customer in page.data)
        seen += [customer.id for customer in page.data]
        token = page.next_token
        if token is None:
            break
    assert len(seen) == len(set(seen)), seen
    assert pages >= 2
    assert [customer_id for customer_id in seen if customer_id in mine] == mine


def test_create_account_defaults_to_usd_and_keeps_what_it_is_given(togai: Togai) -> None:
    customer = customer_with_account(togai, unique("acc"))
    customer_id = customer.id
    usd_id = unique("acc")
    response = togai.accounts.create_account_with_http_info(
        CreateAccountRequest(id=usd_id, name="Plain account", customer_id=customer_id)
    )
    assert response.status_code == 201
    usd = response.data
    assert isinstance(usd, Account)
    assert (usd.id, usd.customer_id, usd.invoice_currency) == (usd_id, customer_id, "USD")
    assert usd.status == "ACTIVE"

    eur_id = unique("acc")
    response = togai.accounts.create_account_with_http_info(
        CreateAccountRequest(
            id=eur_id,
            name="Euro account",
            customer_id=customer_id,
            invoice_currency="EUR",
            primary_email="eu@example.test",
            address=Address(line1="2 Rue Haute", city="Lyon", country="FR"),
            net_term_days=30,
            metadata={"vat": "FR123"},
            tags=["eu"],
        )
    )
    assert response.status_code == 201
    eur = response.data
    assert isinstance(eur, Account)
    assert eur.invoice_currency == "EUR"

    fetched = togai.accounts.get_account(eur_id)
    assert isinstance(fetched, Account)
    assert fetched.id == eur_id
    assert fetched.togai_account_id == eur_id
    assert fetched.name == "Euro account"
    assert fetched.customer_id == customer_id
    assert fetched.togai_customer_id == customer_id
    assert fetched.invoice_currency == "EUR"
    assert fetched.primary_email == "eu@example.test"
    assert fetched.address == Address(line1="2 Rue Haute", city="Lyon", country="FR")
    assert fetched.net_term_days == 30
    assert fetched.metadata == {"vat": "FR123"}
    assert fetched.tags == ["eu"]
    assert fetched.status == "ACTIVE"
    assert togai.accounts.get_account(usd_id).invoice_currency == "USD"

    seen: list[str] = []
    token: str | None = None
    while True:
        page = togai.accounts.get_accounts(page_size=2, next_token=token)
        assert page.data is not None and len(page.data) <= 2
        assert page.context is not None and page.context.page_size == 2
        seen += [account.id for account in page.data]
        token = page.next_token
        if token is None:
            break
    assert len(seen) == len(set(seen)), seen
    mine = [customer.account.id if customer.account else "", usd_id, eur_id]
    assert [account_id for account_id in seen if account_id in mine] == mine


# Credits ----------------------------------------------------------------------------------------


def test_batch_grant_answers_every_credit_with_its_account_fields(togai: Togai) -> None:
    account_id = unique("acc")
    customer = customer_with_account(togai, account_id, currency="EUR")
    first, second = grant(
        togai,
        credit_request(account_id, 100),
        credit_request(
            account_id,
            12.75,
            effective_until=LATER,
            grantor_id="sales",
            applicable_entity_ids=["um.api-calls"],
        ),
    )
    for credit, amount in ((first, 100), (second, 12.75)):
        assert isinstance(credit, Credit)
        assert credit.id.startswith("cred.") and len(credit.id) <= 50
        assert credit.account_id == account_id
        assert credit.customer_id == customer.id
        assert credit.credit_unit == "EUR"
        assert credit.status == "ACTIVE"
        assert credit.credit_amount == amount
        assert (credit.hold_amount, credit.consumed_amount) == (0, 0)
        assert credit.purpose == "PREPAID_CREDIT"
        assert credit.priority == 1
        assert credit.effective_from == PAST
        assert credit.created_at.tzinfo is not None
        assert abs(datetime.now(UTC) - credit.created_at) < timedelta(minutes=5)
    assert first.id != second.id
    assert first.effective_until is None
    assert first.grantor_id is None
    assert not first.applicable_entity_ids
    assert second.effective_until == LATER
    assert second.grantor_id == "sales"
    assert second.applicable_entity_ids == ["um.api-calls"]
    assert isinstance(first.credit_amount, int)

    details = togai.credits.get_credit_details(second.id)
    assert isinstance(details, CreditDetailsResponse)
    assert details.credit_amount == 12.75
    assert details.credit_unit == "EUR"


def test_a_repeated_idempotency_key_returns_the_same_credit(togai: Togai) -> None:
    account_id = unique("acc")
    customer_with_account(togai, account_id)
    key = unique("grant")
    first = grant_one(togai, account_id, 25, idempotency_key=key)
    again = grant_one(togai, account_id, 25, idempotency_key=key)
    assert again.id == first.id
    assert again.idempotency_key == first.idempotency_key == key
    assert again.credit_amount == 25
    assert all_credit_ids(togai, account_id=account_id) == [first.id]


def test_credit_details_show_the_credited_line(togai: Togai) -> None:
    account_id = unique("acc")
    customer = customer_with_account(togai, account_id)
    credit = grant_one(togai, account_id, 50.5)
    details = togai.credits.get_credit_details(credit.id)
    assert isinstance(details, CreditDetailsResponse)
    assert details.id == credit.id
    assert details.account_id == account_id
    assert details.customer_id == customer.id
    assert details.status == "ACTIVE"
    assert details.credit_amount == 50.5
    assert details.credit_unit == "USD"
    assert details.created_at == credit.created_at
    [line] = details.transactions
    assert line.transaction_type == "CREDITED"
    assert line.amount == details.credit_amount == 50.5
    assert line.credit_id == credit.id
    assert line.id.startswith("ctxn.") and len(line.id) <= 50
    assert line.invoice_id is None and line.entity_id is None
    assert line.created_at.tzinfo is not None


def test_list_credits_pages_through_every_credit_once_and_filters(togai: Togai) -> None:
    account_id = unique("acc")
    other_account_id = unique("acc")
    customer_with_account(togai, account_id)
    customer_with_account(togai, other_account_id)
    granted = [grant_one(togai, account_id, amount).id for amount in (1, 2, 3, 4, 5)]
    other = grant_one(togai, other_account_id, 7).id

    listed = all_credit_ids(togai, account_id=account_id)
    assert sorted(listed) == sorted(granted)
    assert len(listed) == len(set(listed))

    everything = all_credit_ids(togai)
    assert len(everything) == len(set(everything))
    assert set(granted) | {other} <= set(everything)

    by_id = togai.credits.list_credits(id=other)
    assert [credit.id for credit in by_id.data] == [other]
    assert by_id.data[0].credit_amount == 7
    assert by_id.next_token is None

    voided = togai.credits.void_credit(granted[0])
    assert voided.status == "VOIDED"
    assert all_credit_ids(togai, account_id=account_id, status="VOIDED") == [granted[0]]
    active = togai.credits.list_credits(account_id=account_id, status="ACTIVE")
    assert sorted(credit.id for credit in active.data) == sorted(granted[1:])
    assert all(credit.status == "ACTIVE" for credit in active.data)
    assert togai.credits.list_credits(account_id=other_account_id, status="VOIDED").data == []


def test_void_moves_what_is_left_and_cannot_repeat(togai: Togai) -> None:
    account_id = unique("acc")
    customer_with_account(togai, account_id)
    credit = grant_one(togai, account_id, 40.25)
    voided = togai.credits.void_credit(credit.id)
    assert isinstance(voided, Credit)
    assert voided.id == credit.id
    assert voided.status == "VOIDED"
    assert voided.credit_amount == 40.25
    assert voided.consumed_amount == 0

    details = togai.credits.get_credit_details(credit.id)
    assert details.status == "VOIDED"
    assert [(line.transaction_type, line.amount) for line in details.transactions] == [
        ("CREDITED", 40.25),
        ("VOIDED", 40.25),
    ]
    assert all(line.credit_id == credit.id for line in details.transactions)

    message = api_error(400, lambda: togai.credits.void_credit(credit.id))
    assert "void" in message.lower()
    assert togai.credits.get_credit_details(credit.id).status == "VOIDED"


def test_credit_balance_after_grants_and_a_void(togai: Togai) -> None:
    account_id = unique("acc")
    customer_with_account(togai, account_id)
    empty = togai.credits.credit_balance_for_account(account_id)
    assert isinstance(empty, CreditBalanceResponse)
    assert (
        empty.active_credits,
        empty.available_balance,
        empty.running_balance,
        empty.inapplicable_credits,
    ) == (0, 0, 0, 0)
    assert empty.unit == "USD"

    grant(
        togai,
        credit_request(account_id, 100),
        credit_request(account_id, 12.75, effective_until=LATER),
        credit_request(account_id, 30, effective_from=FUTURE),
    )
    to_void = grant_one(togai, account_id, 40)
    before = togai.credits.credit_balance_for_account(account_id)
    assert before.active_credits == 182.75
    assert before.available_balance == 152.75
    assert before.running_balance == 152.75
    assert before.inapplicable_credits == 30

    togai.credits.void_credit(to_void.id)
    balance = togai.credits.credit_balance_for_account(account_id)
    assert isinstance(balance, CreditBalanceResponse)
    # the future credit is ACTIVE (so in activeCredits) but not yet in effect
    assert balance.active_credits == 142.75
    assert balance.available_balance == 112.75
    assert balance.running_balance == 112.75
    assert balance.inapplicable_credits == 30
    assert balance.unit == "USD"
    assert balance.last_updated_at.tzinfo is not None
    assert balance.last_updated_at >= before.last_updated_at
    assert abs(datetime.now(UTC) - balance.last_updated_at) < timedelta(minutes=5)


def test_balance_unit_is_the_account_currency(togai: Togai) -> None:
    account_id = unique("acc")
    customer_with_account(togai, account_id, currency="EUR")
    grant_one(togai, account_id, 9.5)
    balance = togai.credits.credit_balance_for_account(account_id)
    assert balance.unit == "EUR"
    assert (balance.active_credits, balance.available_balance) == (9.5, 9.5)


# Errors -----------------------------------------------------------------------------------------


def test_unknown_ids_are_404_with_only_a_message(togai: Togai) -> None:
    missing = "cred.00000000000.abcde"
    message = api_error(404, lambda: togai.credits.get_credit_details(missing))
    assert missing in message
    api_error(404, lambda: togai.credits.void_credit(missing))
    api_error(404, lambda: togai.credits.credit_balance_for_account(unique("nope")))
    api_error(404, lambda: togai.customers.get_customer(unique("nope")))
    api_error(404, lambda: togai.accounts.get_account(unique("nope")))
    api_error(404, lambda: grant_one(togai, unique("nope"), 10))


def test_a_read_only_key_reads_but_cannot_write(togai: Togai, reader: Togai) -> None:
    account_id = unique("acc")
    customer_with_account(togai, account_id)
    credit = grant_one(togai, account_id, 10)

    assert reader.credits.get_credit_details(credit.id).credit_amount == 10
    assert [c.id for c in reader.credits.list_credits(account_id=account_id).data] == [credit.id]
    assert reader.credits.credit_balance_for_account(account_id).available_balance == 10

    api_error(403, lambda: grant_one(reader, account_id, 10))
    api_error(403, lambda: reader.credits.void_credit(credit.id))
    assert togai.credits.get_credit_details(credit.id).status == "ACTIVE"
    assert all_credit_ids(togai, account_id=account_id) == [credit.id]


def test_a_bad_key_is_401(base_url: str, togai: Togai) -> None:
    account_id = unique("acc")
    customer_with_account(togai, account_id)
    credit = grant_one(togai, account_id, 10)
    stranger = connect(base_url, "dd_" + "x" * 43)
    with stranger.client:
        api_error(401, lambda: stranger.credits.get_credit_details(credit.id))
        api_error(401, lambda: stranger.credits.list_credits())
        api_error(401, lambda: grant_one(stranger, account_id, 10))


def test_another_organizations_credit_is_404(
    base_url: str, database_url: str, togai: Togai
) -> None:
    theirs = connect(base_url, create_key(database_url, f"conf-{uuid.uuid4().hex}"))
    with theirs.client:
        account_id = unique("acc")
        customer_with_account(theirs, account_id)
        credit = grant_one(theirs, account_id, 10)

        message = api_error(404, lambda: togai.credits.get_credit_details(credit.id))
        assert credit.id in message
        api_error(404, lambda: togai.credits.void_credit(credit.id))
        api_error(404, lambda: togai.credits.credit_balance_for_account(account_id))
        api_error(404, lambda: togai.accounts.get_account(account_id))
        api_error(404, lambda: grant_one(togai, account_id, 10))
        assert togai.credits.list_credits(id=credit.id).data == []
        assert credit.id not in all_credit_ids(togai)

        # and it is untouched for its owner
        details = theirs.credits.get_credit_details(credit.id)
        assert details.status == "ACTIVE"
        assert [line.transaction_type for line in details.transactions] == ["CREDITED"]
