"""The tables. Amounts are Money; every row of a tenant carries its organization."""

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Column,
    Date,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
    text,
)

from drawdown.store.column_types import Money, MoneyTotal, UtcDateTime

metadata = MetaData(
    naming_convention={
        "ix": "ix_%(column_0_label)s",
        "uq": "uq_%(table_name)s_%(column_0_name)s",
        "ck": "ck_%(table_name)s_%(constraint_name)s",
        "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
        "pk": "pk_%(table_name)s",
    }
)

Key = BigInteger().with_variant(Integer(), "sqlite")
# Credit ids compare in byte order on both engines (SQLite's default; "C" on PostgreSQL), as the
# drawdown order needs, so that order is served by an index.
BYTE_ORDER_ID = String(50).with_variant(String(50, collation="C"), "postgresql")
# Event ids (Togai's limit) in byte order too: an account's events apply in (timestamp, id) order.
EVENT_ID = String(512).with_variant(String(512, collation="C"), "postgresql")
PENDING = text("status = 'PENDING'")

organizations = Table(
    "organizations",
    metadata,
    Column("seq", Key, primary_key=True, autoincrement=True),
    Column("name", String(100), nullable=False, unique=True),
    Column("created_at", UtcDateTime, nullable=False),
)

api_keys = Table(
    "api_keys",
    metadata,
    Column("seq", Key, primary_key=True, autoincrement=True),
    Column("org_seq", Key, ForeignKey("organizations.seq"), nullable=False),
    Column("key_hash", String(64), nullable=False, unique=True),
    Column("read_only", Boolean, nullable=False),
    Column("created_at", UtcDateTime, nullable=False),
    # the key's public name, for `drawdown keys list` and `revoke`; the key itself is never kept
    Column("id", String(50), nullable=False, unique=True),
    Column("revoked_at", UtcDateTime, nullable=True),
)

customers = Table(
    "customers",
    metadata,
    Column("seq", Key, primary_key=True, autoincrement=True),
    Column("org_seq", Key, ForeignKey("organizations.seq"), nullable=False),
    Column("id", String(50), nullable=False),
    Column("name", String(255), nullable=False),
    Column("primary_email", String(320), nullable=False),
    Column("billing_address", String(1000), nullable=False),
    Column("address", JSON, nullable=False),
    Column("settings", JSON, nullable=True),
    Column("status", String(20), nullable=False),
    Column("created_at", UtcDateTime, nullable=False),
    Column("updated_at", UtcDateTime, nullable=False),
    UniqueConstraint("org_seq", "id", name="uq_customers_org_id"),
)

accounts = Table(
    "accounts",
    metadata,
    Column("seq", Key, primary_key=True, autoincrement=True),
    Column("org_seq", Key, ForeignKey("organizations.seq"), nullable=False),
    Column("id", String(50), nullable=False),
    Column("customer_seq", Key, ForeignKey("customers.seq"), nullable=False),
    Column("customer_id", String(50), nullable=False),
    Column("name", String(255), nullable=False),
    Column("invoice_currency", String(3), nullable=False),
    Column("status", String(20), nullable=False),
    Column("details", JSON, nullable=False),
    Column("created_at", UtcDateTime, nullable=False),
    Column("updated_at", UtcDateTime, nullable=False),
    # The balance over the account's active credits, kept with every change to them.
    Column("bal_active_amount", MoneyTotal, nullable=False),
    Column("bal_applicable_left", MoneyTotal, nullable=False),
    Column("bal_applicable_held", MoneyTotal, nullable=False),
    Column("bal_inapplicable_left", MoneyTotal, nullable=False),
    # The day the totals were counted for; they hold for every day up to bal_valid_through,
    # and no write changes them with an earlier day's arithmetic.
    Column("bal_as_of", Date, nullable=False),
    Column("bal_valid_through", Date, nullable=True),
    Column("bal_updated_at", UtcDateTime, nullable=False),
    # Bumped by every save that writes the account's credits, lines, applications or balance,
    # so a load that waited for the account's lock knows its snapshot is stale (versions.py).
    Column("version", BigInteger, nullable=False, server_default=text("0")),
    # The latest timestamp of an event applied on the account (usage); it only moves forward.
    Column("usage_applied_through", UtcDateTime, nullable=True),
    UniqueConstraint("org_seq", "id", name="uq_accounts_org_id"),
    Index("ix_accounts_bal_valid_through", "bal_valid_through"),
)

credits = Table(
    "credits",
    metadata,
    Column("seq", Key, primary_key=True, autoincrement=True),
    Column("org_seq", Key, ForeignKey("organizations.seq"), nullable=False),
    Column("account_seq", Key, ForeignKey("accounts.seq"), nullable=False),
    Column("id", BYTE_ORDER_ID, nullable=False, unique=True),
    Column("account_id", String(50), nullable=False),
    Column("customer_id", String(50), nullable=False),
    Column("credit_unit", String(3), nullable=False),
    Column("purpose", String(255), nullable=False),
    Column("applicable_entity_ids", JSON, nullable=True),
    Column("effective_from", Date, nullable=False),
    Column("effective_until", Date, nullable=True),
    Column("credit_amount", Money, nullable=False),
    Column("priority", Integer, nullable=False),
    Column("grantor_id", String(255), nullable=True),
    Column("idempotency_key", String(255), nullable=True),
    Column("request_hash", String(64), nullable=False),
    Column("status", String(10), nullable=False),
    Column("consumed_amount", Money, nullable=False),
    Column("hold_amount", Money, nullable=False),
    Column("expired_amount", Money, nullable=False),
    Column("voided_amount", Money, nullable=False),
    Column("created_at", UtcDateTime, nullable=False),
    Column("updated_at", UtcDateTime, nullable=False),
    UniqueConstraint("org_seq", "idempotency_key", name="uq_credits_org_idempotency_key"),
    Index("ix_credits_org_seq_seq", "org_seq", "seq"),
    # Serves the drawdown order: an account's active credits, best first, without a sort.
    Index(
        "ix_credits_drawdown_order",
        "account_seq",
        "status",
        "priority",
        "effective_until",
        "effective_from",
        "created_at",
        "id",
    ),
)

credit_transactions = Table(
    "credit_transactions",
    metadata,
    Column("seq", Key, primary_key=True, autoincrement=True),
    Column("credit_seq", Key, ForeignKey("credits.seq"), nullable=False),
    Column("id", String(50), nullable=False, unique=True),
    Column("transaction_type", String(10), nullable=False),
    Column("invoice_id", String(255), nullable=True),
    Column("entity_id", String(255), nullable=True),
    Column("amount", Money, nullable=False),
    Column("created_at", UtcDateTime, nullable=False),
    Index("ix_credit_transactions_credit_seq", "credit_seq", "seq"),
)

credit_applications = Table(
    "credit_applications",
    metadata,
    Column("seq", Key, primary_key=True, autoincrement=True),
    Column("org_seq", Key, ForeignKey("organizations.seq"), nullable=False),
    Column("account_seq", Key, ForeignKey("accounts.seq"), nullable=False),
    Column("invoice_id", String(255), nullable=False),
    Column("mode", String(10), nullable=False),
    Column("status", String(10), nullable=False),
    Column("as_of", Date, nullable=False),
    Column("request_hash", String(64), nullable=False),
    Column("applied_amount", MoneyTotal, nullable=False),
    Column("remaining_amount", MoneyTotal, nullable=False),
    Column("line_items", JSON, nullable=False),
    Column("created_at", UtcDateTime, nullable=False),
    Column("updated_at", UtcDateTime, nullable=False),
    UniqueConstraint("account_seq", "invoice_id", name="uq_credit_applications_account_invoice"),
)


# Usage (docs/usage.md): meters with their rate history, events, and what applying them drew.
usage_meters = Table(
    "usage_meters",
    metadata,
    Column("seq", Key, primary_key=True, autoincrement=True),
    Column("org_seq", Key, ForeignKey("organizations.seq"), nullable=False),
    Column("id", BYTE_ORDER_ID, nullable=False),
    Column("name", String(255), nullable=False),
    Column("event_schema_name", String(50), nullable=False),
    Column("aggregation", String(10), nullable=False),
    Column("attribute", String(50), nullable=True),
    # [[dimension name, value], ...]
    Column("filters", JSON, nullable=False),
    Column("status", String(10), nullable=False),
    Column("created_at", UtcDateTime, nullable=False),
    Column("updated_at", UtcDateTime, nullable=False),
    UniqueConstraint("org_seq", "id", name="uq_usage_meters_org_id"),
)

usage_meter_rates = Table(
    "usage_meter_rates",
    metadata,
    Column("seq", Key, primary_key=True, autoincrement=True),
    Column("meter_seq", Key, ForeignKey("usage_meters.seq"), nullable=False),
    Column("credits", Money, nullable=False),
    Column("per_quantity", Money, nullable=False),
    # null: in effect for every event, however early (only a meter's first rate)
    Column("effective_from", UtcDateTime, nullable=True),
    Column("created_at", UtcDateTime, nullable=False),
    Index("ix_usage_meter_rates_meter_seq", "meter_seq", "seq"),
)

usage_events = Table(
    "usage_events",
    metadata,
    Column("seq", Key, primary_key=True, autoincrement=True),
    Column("org_seq", Key, ForeignKey("organizations.seq"), nullable=False),
    Column("account_seq", Key, ForeignKey("accounts.seq"), nullable=False),
    Column("id", EVENT_ID, nullable=False),
    Column("schema_name", String(50), nullable=False),
    # the event's own timestamp (Togai's `timestamp`)
    Column("occurred_at", UtcDateTime, nullable=False),
    # sha256 of the canonical content (ledger.usage.content_hash): a resend's identity
    Column("content_hash", String(64), nullable=False),
    # {"attributes": [[name, value, unit], ...], "dimensions": {...}}, values as exact text
    Column("content", JSON, nullable=False),
    Column("status", String(10), nullable=False),
    Column("received_at", UtcDateTime, nullable=False),
    Column("applied_at", UtcDateTime, nullable=True),
    # per meter: quantity, rate, cost, allocations (credit, amount, line), uncovered
    Column("results", JSON, nullable=True),
    # ",um.a,um.b,": the meters that priced it, for ?meterId=
    Column("meter_ids", Text, nullable=True),
    UniqueConstraint("org_seq", "id", name="uq_usage_events_org_id"),
    # an account's events by time (lists, ranges, appliedThrough, the clean-up)
    Index("ix_usage_events_account_time", "account_seq", "occurred_at", "id"),
    # what waits to be applied, in the order it applies; small, since applying leaves it
    Index(
        "ix_usage_events_pending",
        "account_seq",
        "occurred_at",
        "id",
        postgresql_where=PENDING,
        sqlite_where=PENDING,
    ),
)

# Running totals per (account, meter), moved by every batch applied; the clean-up never
# lowers them, so GET /accounts/{id}/usage reads them without a scan.
_USAGE_SUMS = (
    "quantity",
    "cost",
    "paid_by_credits",
    "paid_by_wallet",
    "uncovered",
)


def _usage_sums(name: str) -> Table:
    return Table(
        name,
        metadata,
        Column("account_seq", Key, ForeignKey("accounts.seq"), primary_key=True),
        Column("meter_seq", Key, ForeignKey("usage_meters.seq"), primary_key=True),
        Column("org_seq", Key, ForeignKey("organizations.seq"), nullable=False),
        *(Column(column, MoneyTotal, nullable=False) for column in _USAGE_SUMS),
        Column("events", BigInteger, nullable=False),
    )


usage_totals = _usage_sums("usage_totals")
# What purged events had added to usage_totals, so verify still finds the totals whole.
usage_purged = _usage_sums("usage_purged")

# What purged events had drawn from each usage line, so verify still finds the lines whole.
usage_purged_lines = Table(
    "usage_purged_lines",
    metadata,
    Column("line_id", String(50), primary_key=True),
    Column("amount", MoneyTotal, nullable=False),
)
