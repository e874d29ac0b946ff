"""Togai's customers and accounts, as far as credits need them, with their whole lifecycle:
create, read, list, update, delete (archive; docs/wallet.md)."""

from collections.abc import Callable, Sequence
from typing import Any

from drawdown.api import render
from drawdown.api.jsonio import JSONResponse
from drawdown.api.parameters import (
    AccountId,
    CustomerId,
    NextToken,
    PageSize,
    Reader,
    RequestContext,
    Writer,
)
from drawdown.api.routing import READ, WRITE, errors, router
from drawdown.api.schemas import (
    Account,
    AccountPaginatedResponse,
    CreateAccountRequest,
    CreateCustomerRequest,
    CreateCustomerResponse,
    Customer,
    CustomerPaginatedResponse,
)
from drawdown.api.wallet_schemas import (
    BaseSuccessResponse,
    UpdateAccountRequest,
    UpdateCustomerRequest,
)
from drawdown.ledger.records import AccountRecord
from drawdown.services import parties as service
from drawdown.services.paging import decode_token, encode_token
from drawdown.store import parties as store

routes = router()


def _page(rows: Sequence[Any], kind: str, page_size: int, shown: Callable[[Any], Any]) -> Any:
    """A page of Togai's paginated answer from `page_size + 1` rows in seq order: the extra row
    only says that more follow (the token is the last shown row's seq)."""
    body: dict[str, Any] = {
        "data": [shown(row) for row in rows[:page_size]],
        "context": {"pageSize": page_size, "sortOrder": "ASC"},
    }
    if len(rows) > page_size:
        body["nextToken"] = encode_token(kind, rows[page_size - 1].seq)
    return JSONResponse(body)


@routes.post(
    "/customers",
    operation_id="createCustomer",
    responses=errors(*WRITE, 409),
    summary="Create a customer, optionally with an account",
    status_code=201,
    response_model=CreateCustomerResponse,
    tags=["Customers"],
)
async def create_customer(
    body: CreateCustomerRequest,
    principal: Writer,
    ctx: RequestContext,
) -> Any:
    fields = body.model_dump(exclude_none=True)
    created = await ctx.db.transact(
        lambda conn: service.create_customer(conn, principal.org_seq, fields, ctx.now)
    )
    return JSONResponse(render.created_customer(created.customer, created.account), 201)


@routes.get(
    "/customers/{customer_id}",
    operation_id="getCustomer",
    responses=errors(*READ, 404),
    summary="Get a customer",
    response_model=Customer,
    tags=["Customers"],
)
async def get_customer(
    customer_id: CustomerId,
    principal: Reader,
    ctx: RequestContext,
) -> Any:
    async with ctx.db.read() as conn:
        customer = await service.get_customer(conn, principal.org_seq, customer_id)
    return JSONResponse(render.customer(customer))


@routes.patch(
    "/customers/{customer_id}",
    operation_id="updateCustomer",
    responses=errors(*WRITE, 404),
    summary="Update a customer",
    response_model=Customer,
    tags=["Customers"],
)
async def update_customer(
    customer_id: CustomerId,
    body: UpdateCustomerRequest,
    principal: Writer,
    ctx: RequestContext,
) -> Any:
    fields = body.model_dump(exclude_none=True)
    customer = await ctx.db.transact(
        lambda conn: service.update_customer(conn, principal.org_seq, customer_id, fields, ctx.now)
    )
    return JSONResponse(render.customer(customer))


@routes.delete(
    "/customers/{customer_id}",
    operation_id="deleteCustomer",
    responses=errors(*WRITE, 404, 409),
    summary="Delete (archive) a customer whose accounts are all deleted",
    response_model=BaseSuccessResponse,
    tags=["Customers"],
)
async def delete_customer(
    customer_id: CustomerId,
    principal: Writer,
    ctx: RequestContext,
) -> Any:
    await ctx.db.transact(
        lambda conn: service.delete_customer(conn, principal.org_seq, customer_id, ctx.now)
    )
    return JSONResponse({"success": True})


@routes.get(
    "/customers",
    operation_id="getCustomers",
    responses=errors(*READ),
    summary="List customers",
    response_model=CustomerPaginatedResponse,
    tags=["Customers"],
)
async def get_customers(
    principal: Reader,
    ctx: RequestContext,
    next_token: NextToken = None,
    page_size: PageSize = 50,
) -> Any:
    after = decode_token("customers", next_token)
    async with ctx.db.read() as conn:
        rows = await store.page_of_customers(conn, principal.org_seq, after, page_size + 1)
    return _page(rows, "customers", page_size, render.customer)


@routes.post(
    "/accounts",
    operation_id="createAccount",
    responses=errors(*WRITE, 404, 409),
    summary="Create an account for a customer",
    status_code=201,
    response_model=Account,
    tags=["Accounts"],
)
async def create_account(
    body: CreateAccountRequest,
    principal: Writer,
    ctx: RequestContext,
) -> Any:
    fields = body.model_dump(exclude_none=True)
    account = await ctx.db.transact(
        lambda conn: service.create_account(conn, principal.org_seq, fields, ctx.now)
    )
    return JSONResponse(render.account(account), 201)


@routes.get(
    "/accounts/{account_id}",
    operation_id="getAccount",
    responses=errors(*READ, 404),
    summary="Get an account",
    response_model=Account,
    tags=["Accounts"],
)
async def get_account(
    account_id: AccountId,
    principal: Reader,
    ctx: RequestContext,
) -> Any:
    async with ctx.db.read() as conn:
        account = await service.get_account(conn, principal.org_seq, account_id)
    return JSONResponse(render.account(account))


@routes.patch(
    "/accounts/{account_id}",
    operation_id="updateAccount",
    responses=errors(*WRITE, 404, 409),
    summary="Update an account (its currency only while it has no credits and no wallet)",
    response_model=Account,
    tags=["Accounts"],
)
async def update_account(
    account_id: AccountId,
    body: UpdateAccountRequest,
    principal: Writer,
    ctx: RequestContext,
) -> Any:
    update = service.account_update(body.model_dump(exclude_none=True))
    account = await ctx.writes.update_account(
        principal.org_seq, account_id, update, principal.key_id
    )
    return JSONResponse(render.account(account))


@routes.delete(
    "/accounts/{account_id}",
    operation_id="deleteAccount",
    responses=errors(*WRITE, 404, 409),
    summary="Delete (archive) an account that holds no money",
    response_model=BaseSuccessResponse,
    tags=["Accounts"],
)
async def delete_account(
    account_id: AccountId,
    principal: Writer,
    ctx: RequestContext,
) -> Any:
    await ctx.writes.archive_account(principal.org_seq, account_id, principal.key_id)
    return JSONResponse({"success": True})


@routes.get(
    "/accounts",
    operation_id="getAccounts",
    responses=errors(*READ),
    summary="List accounts",
    response_model=AccountPaginatedResponse,
    tags=["Accounts"],
)
async def get_accounts(
    principal: Reader,
    ctx: RequestContext,
    next_token: NextToken = None,
    page_size: PageSize = 50,
) -> Any:
    after = decode_token("accounts", next_token)
    async with ctx.db.read() as conn:
        rows = await store.page_of_accounts(conn, principal.org_seq, after, page_size + 1)
    return _page(
        rows, "accounts", page_size, lambda row: render.account(AccountRecord.from_row(row))
    )
