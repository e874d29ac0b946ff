"""Togai's Wallet API (docs/wallet.md): top-up, read, update, entries."""

from typing import Annotated, Any

from fastapi import Header

from drawdown.api import render
from drawdown.api.fields import Identifier
from drawdown.api.jsonio import JSONResponse
from drawdown.api.parameters import AccountId, NextToken, PageSize, Reader, RequestContext, Writer
from drawdown.api.routing import READ, WRITE, errors, router
from drawdown.api.wallet_schemas import (
    TopupWalletRequest,
    UpdateWalletRequest,
    WalletBalanceResponse,
    WalletEntriesPaginatedResponse,
)
from drawdown.ledger.wallet import WalletStatus
from drawdown.services import wallets as service

routes = router()

IdempotencyKey = Annotated[
    Identifier | None,
    Header(
        alias="Idempotency-Key",
        description=(
            "Unique per organization: the same key with the same account and amount answers "
            "again and tops up nothing; with another, a 409. Send one on every top-up."
        ),
    ),
]
TAG = "Wallet"


@routes.post(
    "/accounts/{account_id}/wallet_topup",
    operation_id="topUpWalletForAccount",
    responses=errors(*WRITE, 404, 409),
    summary="Top up the wallet of an account (made by the first top-up)",
    response_model=WalletBalanceResponse,
    tags=[TAG],
)
async def top_up_wallet(
    account_id: AccountId,
    body: TopupWalletRequest,
    principal: Writer,
    ctx: RequestContext,
    idempotency_key: IdempotencyKey = None,
) -> Any:
    wallet = await ctx.writes.top_up(
        principal.org_seq, account_id, body.topupAmount, idempotency_key, principal.key_id
    )
    return JSONResponse(render.wallet(wallet))


@routes.get(
    "/accounts/{account_id}/wallet",
    operation_id="walletBalanceForAccount",
    responses=errors(*READ, 404),
    summary="Get the wallet of an account",
    response_model=WalletBalanceResponse,
    tags=[TAG],
)
async def get_wallet(
    account_id: AccountId,
    principal: Reader,
    ctx: RequestContext,
) -> Any:
    async with ctx.db.read() as conn:
        wallet = await service.get_wallet(conn, principal.org_seq, account_id)
    return JSONResponse(render.wallet(wallet))


@routes.patch(
    "/accounts/{account_id}/wallet",
    operation_id="updateWalletForAccount",
    responses=errors(*WRITE, 404),
    summary="Update the status or effectiveFrom of the wallet of an account",
    response_model=WalletBalanceResponse,
    tags=[TAG],
)
async def update_wallet(
    account_id: AccountId,
    principal: Writer,
    ctx: RequestContext,
    body: UpdateWalletRequest | None = None,
) -> Any:
    given = body or UpdateWalletRequest()
    status = WalletStatus(given.status) if given.status is not None else None
    wallet = await ctx.writes.update_wallet(
        principal.org_seq, account_id, status, given.effectiveFrom, principal.key_id
    )
    return JSONResponse(render.wallet(wallet))


@routes.get(
    "/accounts/{account_id}/wallet/entries",
    operation_id="walletEntriesForAccount",
    responses=errors(*READ, 404),
    summary="List the entries of the wallet of an account, oldest first",
    response_model=WalletEntriesPaginatedResponse,
    tags=[TAG],
)
async def wallet_entries(
    account_id: AccountId,
    principal: Reader,
    ctx: RequestContext,
    next_token: NextToken = None,
    page_size: PageSize = 50,
) -> Any:
    async with ctx.db.read() as conn:
        page = await service.entries_page(
            conn, principal.org_seq, account_id, page_size=page_size, next_token=next_token
        )
    body: dict[str, Any] = {"data": [render.wallet_entry(e) for e in page.entries]}
    if page.next_token:
        body["nextToken"] = page.next_token
    return JSONResponse(body)
