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
