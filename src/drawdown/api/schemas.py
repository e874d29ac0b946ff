"""Request bodies (validated) and response shapes (for the OpenAPI document), in Togai's names.

Responses are rendered by `drawdown.api.render` (and, for the hottest reads on PostgreSQL, by
SQL); the models here describe them for clients, field for field: a field the renderer always
writes is required (nullable when it can be null), one it may leave out has a default.
tests/test_openapi.py and the schemathesis run check every answer against them.
"""

from datetime import date, datetime
from decimal import Decimal
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Discriminator,
    Field,
    StrictBool,
    StrictInt,
    StrictStr,
    Tag,
    WithJsonSchema,
)
from pydantic.config import JsonDict

from drawdown.api.fields import (
    CalendarDate,
    Identifier,
    NonNegativeAmount,
    PositiveAmount,
    Text,
)
from drawdown.ledger.money import MAX_FRACTION_DIGITS, MAX_INTEGER_DIGITS
from drawdown.services.parties import billing_address


class Body(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=False)


class Out(BaseModel):
    model_config = ConfigDict(extra="forbid")


Number = Annotated[Decimal, WithJsonSchema({"type": "number"})]


def _amount_schema(**bound: int) -> WithJsonSchema:
    """What JSON Schema can say of an amount's limits: the bound, below 10^18, and at most
    10 decimals (the exact digit rules are `ledger.money.check_amount`)."""
    return WithJsonSchema(
        {
            "type": "number",
            **bound,
            "exclusiveMaximum": 10**MAX_INTEGER_DIGITS,
            "multipleOf": float(Decimal(1).scaleb(-MAX_FRACTION_DIGITS)),
        }
    )


CreditAmount = Annotated[PositiveAmount, _amount_schema(exclusiveMinimum=0)]
LineItemAmount = Annotated[NonNegativeAmount, _amount_schema(minimum=0)]


def _whole_number(value: Any) -> Any:
    # JSON Schema's integer is any number without a fraction (7 and 7.0 alike), and the document
    # can say no more; so 7.0 is 7 here too. Past 18 digits it stays a decimal and is refused.
    if isinstance(value, Decimal) and value.is_finite() and value.adjusted() < 18:
        whole = value.to_integral_value()
        if whole == value:
            return int(whole)
    return value


# (the bounds stand before the validator, or pydantic writes them as "ge"/"le" in the schema)
Priority = Annotated[StrictInt, Field(ge=0, le=1_000_000), BeforeValidator(_whole_number)]
NetTermDays = Annotated[StrictInt, Field(ge=0), BeforeValidator(_whole_number)]
# An invoice id in a body and in a path are the same kind of value.
InvoiceIdentifier = Identifier

# Requests ------------------------------------------------------------------------------------


# services.grants refuses a repeated entity id; uniqueItems says so in the document
EntityIds = Annotated[
    list[Annotated[StrictStr, Field(min_length=1, max_length=255)]],
    Field(max_length=100, json_schema_extra={"uniqueItems": True}),
]


# The README's grant, the example of a single request and of a batch of one.
_GRANT_EXAMPLE: JsonDict = {
    "accountId": "acme-main",
    "purpose": "PREPAID_CREDIT",
    "effectiveFrom": "2026-01-01",
    "creditAmount": 100.1,
    "priority": 1,
    "idempotencyKey": "acme-prepaid-1",
}


class CreditRequest(Body):
    """Payload to grant Credits."""

    model_config = ConfigDict(json_schema_extra={"examples": [_GRANT_EXAMPLE]})

    accountId: Identifier
    purpose: Text
    applicableEntityIds: EntityIds | None = None
    effectiveFrom: CalendarDate
    effectiveUntil: CalendarDate | None = None
    creditAmount: CreditAmount
    priority: Priority
    grantorId: Text | None = None
    idempotencyKey: Identifier | None = None


class CreateCreditRequest(Body):
    """payload to create credits"""

    model_config = ConfigDict(
        json_schema_extra={"examples": [{"creditRequests": [_GRANT_EXAMPLE]}]}
    )

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


# Togai's Customer.billingAddress, the address's parts joined, is at most this long
MAX_BILLING_ADDRESS = 1000


def _billing_address_fits(address: Address) -> Address:
    joined = billing_address(address.model_dump(exclude_none=True))
    if len(joined) > MAX_BILLING_ADDRESS:
        raise ValueError(
            f"its parts joined (the billingAddress) come to {len(joined)} characters; Togai "
            f"allows at most {MAX_BILLING_ADDRESS}, so shorten them"
        )
    return address


# A customer's address: its billingAddress is made from it
CustomerAddress = Annotated[Address, AfterValidator(_billing_address_fits)]
Email = Annotated[StrictStr, Field(min_length=3, max_length=320)]
Name = Annotated[StrictStr, Field(min_length=3, max_length=255)]
Currency = Annotated[StrictStr, Field(pattern=r"^[A-Z]{3}$")]
# Togai stores an account's tags in lowercase (UpdateAccountRequest.tags)
AccountTag = Annotated[StrictStr, AfterValidator(str.lower)]


class EntitySetting(Body):
    """Togai's CreateEntitySetting: kept and answered back, so only what the client reads."""

    id: StrictStr
    value: StrictStr
    namespace: StrictStr
    name: StrictStr
    dataType: Literal["STRING", "NUMERIC", "JSON", "JSON_LOGIC"]


class BillingInformation(Body):
    """Togai's AccountsBillingInformation: kept and answered back, so only what the client's
    model reads."""

    emailRecipients: list[Email] | None = None
    additionalEmailRecipients: list[Email] | None = None


class AccountFields(Body):
    """The account fields drawdown keeps; aliases and schedules belong to Togai's invoicing."""

    id: Identifier
    name: Name
    invoiceCurrency: Currency = "USD"
    primaryEmail: Email | None = None
    address: Address | None = None
    netTermDays: NetTermDays | None = None
    metadata: dict[str, StrictStr] | None = None
    tags: list[AccountTag] | None = None
    settings: list[EntitySetting] | None = Field(default=None, max_length=10)
    billingInformation: BillingInformation | None = None
    status: Literal["ACTIVE", "DRAFT"] | None = None
    aliases: list[StrictStr] | None = Field(default=None, max_length=0)
    accountAliases: list[dict[str, Any]] | None = Field(default=None, max_length=0)


class CreateAccountRequestWithoutCustomerId(AccountFields):
    pass


class CreateAccountRequest(AccountFields):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {"id": "acme-eu", "name": "Acme EU", "customerId": "acme", "invoiceCurrency": "EUR"}
            ]
        }
    )

    customerId: Identifier


class CreateCustomerRequest(Body):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "id": "acme",
                    "name": "Acme Inc",
                    "primaryEmail": "billing@acme.test",
                    "address": {"line1": "1 Main St", "city": "Springfield", "country": "US"},
                    "account": {"id": "acme-main", "name": "Acme main account"},
                }
            ]
        }
    )

    id: Identifier
    name: Name
    primaryEmail: Email
    address: CustomerAddress
    settings: list[EntitySetting] | None = Field(default=None, max_length=10)
    account: CreateAccountRequestWithoutCustomerId | None = None


# Responses -----------------------------------------------------------------------------------


class ErrorResponse(Out):
    message: str = Field(max_length=500)


class Credit(Out):
    accountId: str
    purpose: str
    applicableEntityIds: list[str] | None
    effectiveFrom: date
    effectiveUntil: date | None
    creditAmount: Number
    priority: int
    grantorId: str | None
    idempotencyKey: str | None
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
    invoiceId: str | None
    entityId: str | None
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


class EntitySettingOut(Out):
    id: str
    value: str
    namespace: str
    name: str
    dataType: Literal["STRING", "NUMERIC", "JSON", "JSON_LOGIC"]


class BillingInformationOut(Out):
    emailRecipients: list[str] | None = None
    additionalEmailRecipients: list[str] | None = None


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
    billingInformation: BillingInformationOut | None = None
    status: Literal["ACTIVE", "DRAFT", "ARCHIVED"]
    settings: list[EntitySettingOut] | None = None
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
    billingAddress: str
    address: AddressOut
    settings: list[EntitySettingOut] | None = None
    account: Account | None = None


class PaginationOptions(Out):
    pageSize: int
    sortOrder: Literal["ASC", "DESC"]


class CustomerPaginatedResponse(Out):
    data: list[Customer]
    nextToken: str | None = None
    context: PaginationOptions


class AccountPaginatedResponse(Out):
    data: list[Account]
    nextToken: str | None = None
    context: PaginationOptions


# Applications (drawdown's own) ----------------------------------------------------------------


class LineItemRequest(Body):
    entityId: Text
    entityType: Literal["USAGE_METER_RATE_CARD", "FIXED_FEE_RATE_CARD"]
    amount: LineItemAmount


class CreditApplicationRequest(Body):
    """Apply an account's credits, then its wallet, to an invoice: HOLD reserves, DEBIT spends
    at once; `useWallet: false` leaves the wallet out."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "invoiceId": "inv-2026-11",
                    "mode": "HOLD",
                    "lineItems": [
                        {
                            "entityId": "um.api-calls",
                            "entityType": "USAGE_METER_RATE_CARD",
                            "amount": 30.05,
                        }
                    ],
                }
            ]
        }
    )

    invoiceId: Identifier
    mode: Literal["HOLD", "DEBIT"]
    asOf: CalendarDate | None = None
    lineItems: list[LineItemRequest] = Field(min_length=1, max_length=500)
    useWallet: StrictBool = True


class ApplicationAllocation(Out):
    creditId: str
    amount: Number


class WalletAllocation(Out):
    """What the account's wallet paid, after its credits (docs/wallet.md)."""

    walletId: str
    amount: Number


class ApplicationLineItem(Out):
    entityId: str
    entityType: Literal["USAGE_METER_RATE_CARD", "FIXED_FEE_RATE_CARD"]
    amount: Number
    appliedAmount: Number
    remainingAmount: Number
    # the credits that paid, in drawdown order, then the wallet if it paid
    allocations: list[ApplicationAllocation | WalletAllocation]


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
