"""Request bodies (validated) and response shapes (for the OpenAPI document), in Togai's names.

Responses are rendered by `drawdown.api.render`; the models here describe them for clients.
"""

from datetime import date, datetime
from decimal import Decimal
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Discriminator,
    Field,
    StrictInt,
    StrictStr,
    Tag,
    WithJsonSchema,
)

from drawdown.api.fields import (
    CalendarDate,
    Identifier,
    NonNegativeAmount,
    PositiveAmount,
    Text,
)


class Body(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=False)


class Out(BaseModel):
    model_config = ConfigDict(extra="forbid")


Number = Annotated[Decimal, WithJsonSchema({"type": "number"})]

# Requests ------------------------------------------------------------------------------------


class CreditRequest(Body):
    """Payload to grant Credits."""

    accountId: Identifier
    purpose: Text
    applicableEntityIds: list[Annotated[StrictStr, Field(min_length=1, max_length=255)]] | None = (
        Field(default=None, max_length=100)
    )
    effectiveFrom: CalendarDate
    effectiveUntil: CalendarDate | None = None
    creditAmount: PositiveAmount
    priority: StrictInt = Field(ge=0, le=1_000_000)
    grantorId: Text | None = None
    idempotencyKey: Identifier | None = None


class CreateCreditRequest(Body):
    """payload to create credits"""

    creditRequests: list[CreditRequest] = Field(min_length=1, max_length=50)


def _credit_body_kind(value: Any) -> str:
    return "batch" if isinstance(value, dict) and "creditRequests" in value else "single"


CreditGrantBody = Annotated[
    Annotated[CreateCreditRequest, Tag("batch")] | Annotated[CreditRequest, Tag("single")],
    Discriminator(_credit_body_kind),
]


class Address(Body):
    phoneNumber: StrictStr | None = None
    line1: StrictStr | None = None
    line2: StrictStr | None = None
    postalCode: StrictStr | None = None
    city: StrictStr | None = None
    state: StrictStr | None = None
    country: StrictStr | None = None


Email = Annotated[StrictStr, Field(min_length=3, max_length=320)]
Name = Annotated[StrictStr, Field(min_length=3, max_length=255)]
Currency = Annotated[StrictStr, Field(pattern=r"^[A-Z]{3}$")]


class AccountFields(Body):
    """The account fields drawdown keeps; aliases and schedules belong to Togai's invoicing."""

    id: Identifier
    name: Name
    invoiceCurrency: Currency = "USD"
    primaryEmail: Email | None = None
    address: Address | None = None
    netTermDays: StrictInt | None = Field(default=None, ge=0)
    metadata: dict[str, StrictStr] | None = None
    tags: list[StrictStr] | None = None
    settings: list[dict[str, Any]] | None = Field(default=None, max_length=10)
    billingInformation: dict[str, Any] | None = None
    status: Literal["ACTIVE", "DRAFT"] | None = None
    aliases: list[StrictStr] | None = Field(default=None, max_length=0)
    accountAliases: list[dict[str, Any]] | None = Field(default=None, max_length=0)


class CreateAccountRequestWithoutCustomerId(AccountFields):
    pass


class CreateAccountRequest(AccountFields):
    customerId: Identifier


class CreateCustomerRequest(Body):
    id: Identifier
    name: Name
    primaryEmail: Email
    address: Address
    settings: list[dict[str, Any]] | None = Field(default=None, max_length=10)
    account: CreateAccountRequestWithoutCustomerId | None = None


# Responses -----------------------------------------------------------------------------------


class ErrorResponse(Out):
    message: str = Field(max_length=500)


class Credit(Out):
    accountId: str
    purpose: str
    applicableEntityIds: list[str] | None = None
    effectiveFrom: date
    effectiveUntil: date | None = None
    creditAmount: Number
    priority: int
    grantorId: str | None = None
    idempotencyKey: str | None = None
    id: str = Field(max_length=50)
    customerId: str
    status: Literal["ACTIVE", "CONSUMED", "EXPIRED", "VOIDED"]
    creditUnit: str
    holdAmount: Number
    consumedAmount: Number
    createdAt: datetime
    updatedAt: datetime


class CreditTransaction(Out):
    id: str = Field(max_length=50)
    creditId: str
    transactionType: Literal["CREDITED", "DEBITED", "EXPIRED", "VOIDED"]
    invoiceId: str | None = None
    entityId: str | None = None
    amount: Number
    createdAt: datetime


class CreditDetailsResponse(Credit):
    transactions: list[CreditTransaction]


class CreateCreditResponse(Out):
    credits: list[Credit]


class ListCreditsResponse(Out):
    data: list[Credit] = Field(max_length=50)
    nextToken: str | None = Field(default=None, max_length=500)


class CreditBalanceResponse(Out):
    activeCredits: Number
    availableBalance: Number
    runningBalance: Number
    inapplicableCredits: Number
    unit: str
    lastUpdatedAt: datetime


class AddressOut(Out):
    phoneNumber: str | None = None
    line1: str | None = None
    line2: str | None = None
    postalCode: str | None = None
    city: str | None = None
    state: str | None = None
    country: str | None = None


class Account(Out):
    id: str
    togaiAccountId: str
    togaiCustomerId: str
    name: str
    customerId: str
    invoiceCurrency: str
    netTermDays: int | None = None
    address: AddressOut | None = None
    primaryEmail: str | None = None
    billingInformation: dict[str, Any] | None = None
    status: Literal["ACTIVE", "DRAFT", "ARCHIVED"]
    settings: list[dict[str, Any]] | None = None
    metadata: dict[str, str] | None = None
    tags: list[str] | None = None


class Customer(Out):
    id: str
    togaiCustomerId: str
    name: str
    primaryEmail: str
    billingAddress: str
    address: AddressOut
    status: Literal["ACTIVE", "ARCHIVED"]
    createdAt: datetime
    updatedAt: datetime


class CreateCustomerResponse(Out):
    id: str
    togaiCustomerId: str
    name: str
    primaryEmail: str
    billingAddress: str | None = None
    address: AddressOut | None = None
    settings: list[dict[str, Any]] | None = None
    account: Account | None = None


class PaginationOptions(Out):
    pageSize: int | None = None
    sortOrder: Literal["ASC", "DESC"] | None = None


class CustomerPaginatedResponse(Out):
    data: list[Customer]
    nextToken: str | None = None
    context: PaginationOptions | None = None


class AccountPaginatedResponse(Out):
    data: list[Account]
    nextToken: str | None = None
    context: PaginationOptions | None = None


# Applications (drawdown's own) ----------------------------------------------------------------


class LineItemRequest(Body):
    entityId: Text
    entityType: Literal["USAGE_METER_RATE_CARD", "FIXED_FEE_RATE_CARD"]
    amount: NonNegativeAmount


class CreditApplicationRequest(Body):
    """Apply an account's credits to an invoice: HOLD reserves, DEBIT spends at once."""

    invoiceId: Identifier
    mode: Literal["HOLD", "DEBIT"]
    asOf: CalendarDate | None = None
    lineItems: list[LineItemRequest] = Field(min_length=1, max_length=500)


class ApplicationAllocation(Out):
    creditId: str
    amount: Number


class ApplicationLineItem(Out):
    entityId: str
    entityType: Literal["USAGE_METER_RATE_CARD", "FIXED_FEE_RATE_CARD"]
    amount: Number
    appliedAmount: Number
    remainingAmount: Number
    allocations: list[ApplicationAllocation]


class CreditApplication(Out):
    accountId: str
    invoiceId: str
    status: Literal["HELD", "DEBITED", "RELEASED"]
    asOf: date
    appliedAmount: Number
    remainingAmount: Number
    lineItems: list[ApplicationLineItem]
    createdAt: datetime
    updatedAt: datetime


class CreditApplicationList(Out):
    data: list[CreditApplication]
    nextToken: str | None = None
