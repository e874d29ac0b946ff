"""The wallet's bodies and answers, and the customer and account updates (docs/wallet.md), in
togai-client's names: TopupWalletRequest, UpdateWalletRequest, WalletBalanceResponse,
WalletEntry, WalletEntriesPaginatedResponse, UpdateCustomerRequest, UpdateAccountRequest,
BaseSuccessResponse."""

from datetime import datetime
from typing import Literal

from pydantic import ConfigDict, Field, StrictStr

from drawdown.api.schemas import (
    AccountTag,
    Address,
    BillingInformation,
    Body,
    CreditAmount,
    Currency,
    CustomerAddress,
    Email,
    Name,
    NetTermDays,
    Number,
    Out,
)
from drawdown.api.usage_schemas import Time


class TopupWalletRequest(Body):
    """Payload to top up the wallet of an account (send an Idempotency-Key header too)."""

    model_config = ConfigDict(json_schema_extra={"examples": [{"topupAmount": 500}]})

    topupAmount: CreditAmount


class UpdateWalletRequest(Body):
    """Payload to update the wallet of an account: what is given changes."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [{"status": "INACTIVE"}, {"effectiveFrom": "2026-12-01T00:00:00Z"}]
        }
    )

    effectiveFrom: Time | None = None
    status: Literal["ACTIVE", "INACTIVE"] | None = None


class WalletBalanceResponse(Out):
    id: str = Field(max_length=50)
    accountId: str
    customerId: str
    balance: Number
    creditUnit: str
    status: Literal["ACTIVE", "INACTIVE"]
    holdAmount: Number
    effectiveFrom: datetime
    createdAt: datetime
    updatedAt: datetime


class WalletEntry(Out):
    id: str = Field(max_length=50)
    walletId: str
    transactionType: Literal["CREDITED", "DEBITED"]
    status: Literal["COMPLETED", "ON_HOLD"]
    entityId: str | None
    amount: Number
    createdAt: datetime
    closingBalance: Number


class WalletEntriesPaginatedResponse(Out):
    data: list[WalletEntry] = Field(max_length=50)
    nextToken: str | None = Field(default=None, max_length=500)


class UpdateCustomerRequest(Body):
    """Payload to update a customer: what is given replaces what was."""

    model_config = ConfigDict(json_schema_extra={"examples": [{"name": "Acme Corporation"}]})

    name: Name | None = None
    primaryEmail: Email | None = None
    address: CustomerAddress | None = None


class UpdateAccountRequest(Body):
    """Payload to update an account: what is given replaces what was (`metadata: {}` removes
    all); `invoiceCurrency` cannot change once the account has credits or a wallet."""

    model_config = ConfigDict(
        json_schema_extra={"examples": [{"name": "Acme EU", "invoiceCurrency": "EUR"}]}
    )

    name: Name | None = None
    status: Literal["ACTIVE", "DRAFT"] | None = None
    invoiceCurrency: Currency | None = None
    netTermDays: NetTermDays | None = None
    primaryEmail: Email | None = None
    billingInformation: BillingInformation | None = None
    address: Address | None = None
    metadata: dict[str, StrictStr] | None = None
    tags: list[AccountTag] | None = None


class BaseSuccessResponse(Out):
    success: bool
