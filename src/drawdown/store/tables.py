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
EXPIRING = text("status = 'ACTIVE' AND effective_until IS NOT NULL")

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
    # set when deleted: reads answer 404, the id stays taken (docs/wallet.md)
    Column("archived_at", UtcDateTime, nullable=True),
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
    # set when deleted (only once no money remains): reads answer 404, the id stays taken
    Column("archived_at", UtcDateTime, nullable=True),
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
    # The sweep's credit.expiring_soon: active credits by their last day. Only credits that
    # have one: a lookup of an account's active credits must not be able to take this index
    # (a generic plan made on young statistics did, and read every credit; migration 0010).
    Index(
        "ix_credits_expiring",
        "effective_until",
        postgresql_where=EXPIRING,
        sqlite_where=EXPIRING,
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
    # no foreign keys: the ingest statement takes both from the account it joins, and
    # `drawdown verify` checks them (migration 0009 says why)
    Column("org_seq", Key, nullable=False),
    Column("account_seq", Key, nullable=False),
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


# Events and webhooks (docs/webhooks.md). `events` is the outbox: written in the transaction of
# the change that caused each one, with one delivery row per endpoint that takes it.
events = Table(
    "events",
    metadata,
    Column("seq", Key, primary_key=True, autoincrement=True),
    Column("org_seq", Key, ForeignKey("organizations.seq"), nullable=False),
    Column("id", String(50), nullable=False, unique=True),
    Column("type", String(40), nullable=False),
    Column("actor", String(50), nullable=False),
    # the account it is about, when it is about one
    Column("account_seq", Key, ForeignKey("accounts.seq"), nullable=True),
    Column("occurred_at", UtcDateTime, nullable=False),
    # the event's `data` as JSON text, amounts as exact number literals
    Column("data", Text, nullable=False),
    Index("ix_events_org_seq", "org_seq", "seq"),
    Index("ix_events_org_type", "org_seq", "type", "seq"),
    Index("ix_events_org_time", "org_seq", "occurred_at"),
)

webhook_endpoints = Table(
    "webhook_endpoints",
    metadata,
    Column("seq", Key, primary_key=True, autoincrement=True),
    Column("org_seq", Key, ForeignKey("organizations.seq"), nullable=False),
    Column("id", String(50), nullable=False, unique=True),
    Column("url", String(2000), nullable=False),
    # ",credit.granted,balance.low,": the types it takes; null: every type
    Column("event_types", Text, nullable=True),
    Column("description", String(500), nullable=True),
    Column("secret", String(100), nullable=False),
    # the secret before the last rotation, still signing until `previous_secret_until`
    Column("previous_secret", String(100), nullable=True),
    Column("previous_secret_until", UtcDateTime, nullable=True),
    Column("status", String(10), nullable=False),
    Column("disabled_reason", String(1000), nullable=True),
    # the first failed attempt since the last success (null: the last attempt succeeded)
    Column("failing_since", UtcDateTime, nullable=True),
    Column("created_at", UtcDateTime, nullable=False),
    Column("updated_at", UtcDateTime, nullable=False),
    Index("ix_webhook_endpoints_org_seq", "org_seq", "seq"),
)

webhook_deliveries = Table(
    "webhook_deliveries",
    metadata,
    Column("seq", Key, primary_key=True, autoincrement=True),
    Column(
        "endpoint_seq",
        Key,
        ForeignKey("webhook_endpoints.seq", ondelete="CASCADE"),
        nullable=False,
    ),
    Column("event_seq", Key, ForeignKey("events.seq"), nullable=False),
    Column("status", String(10), nullable=False),
    Column("attempts", Integer, nullable=False),
    Column("next_attempt_at", UtcDateTime, nullable=True),
    # which process is sending it, and until when its claim holds
    Column("claimed_by", String(100), nullable=True),
    Column("claimed_until", UtcDateTime, nullable=True),
    Column("created_at", UtcDateTime, nullable=False),
    Column("finished_at", UtcDateTime, nullable=True),
    Index("ix_webhook_deliveries_endpoint", "endpoint_seq", "seq"),
    # what waits to be sent, soonest first; small, since delivering leaves it
    Index(
        "ix_webhook_deliveries_due",
        "next_attempt_at",
        postgresql_where=PENDING,
        sqlite_where=PENDING,
    ),
    # the clean-up's: what finished before a cut-off (PENDING rows have no finished_at), and
    # whether any delivery still refers to an event
    Index("ix_webhook_deliveries_finished", "finished_at"),
    Index("ix_webhook_deliveries_event", "event_seq"),
)

webhook_attempts = Table(
    "webhook_attempts",
    metadata,
    Column("seq", Key, primary_key=True, autoincrement=True),
    Column(
        "delivery_seq",
        Key,
        ForeignKey("webhook_deliveries.seq", ondelete="CASCADE"),
        nullable=False,
    ),
    Column("attempted_at", UtcDateTime, nullable=False),
    Column("status_code", Integer, nullable=True),
    Column("duration_ms", Integer, nullable=False),
    Column("error", String(500), nullable=True),
    Index("ix_webhook_attempts_delivery", "delivery_seq", "seq"),
)

# Balance alert thresholds: an organization's defaults, and an account's own lists (a null
# list falls back to the organization's). Lists are JSON arrays of exact decimal text.
organization_alerts = Table(
    "organization_alerts",
    metadata,
    Column("org_seq", Key, ForeignKey("organizations.seq"), primary_key=True),
    Column("thresholds", JSON, nullable=False),
    Column("wallet_thresholds", JSON, nullable=False),
    Column("expiring_soon_days", Integer, nullable=False),
    Column("updated_at", UtcDateTime, nullable=False),
)

account_alerts = Table(
    "account_alerts",
    metadata,
    Column("account_seq", Key, ForeignKey("accounts.seq"), primary_key=True),
    Column("org_seq", Key, ForeignKey("organizations.seq"), nullable=False),
    Column("thresholds", JSON, nullable=True),
    Column("wallet_thresholds", JSON, nullable=True),
    Column("updated_at", UtcDateTime, nullable=False),
)

# A threshold that fired and is not armed again yet (kind: BALANCE or WALLET; 0: depleted).
alert_marks = Table(
    "alert_marks",
    metadata,
    Column("account_seq", Key, ForeignKey("accounts.seq"), primary_key=True),
    Column("kind", String(10), primary_key=True),
    Column("threshold", Money, primary_key=True),
    Column("fired_at", UtcDateTime, nullable=False),
)

# credit.expiring_soon was recorded for this credit (once per credit)
expiring_soon_sent = Table(
    "expiring_soon_sent",
    metadata,
    Column("credit_seq", Key, ForeignKey("credits.seq"), primary_key=True),
    Column("sent_at", UtcDateTime, nullable=False),
)

# usage.uncovered, at most once per account per hour: when it was last recorded, and what
# was uncovered since (reported by the next one)
uncovered_marks = Table(
    "uncovered_marks",
    metadata,
    Column("account_seq", Key, ForeignKey("accounts.seq"), primary_key=True),
    Column("last_sent_at", UtcDateTime, nullable=True),
    Column("unreported", MoneyTotal, nullable=False),
    Column("unreported_since", UtcDateTime, nullable=True),
)

# The wallet (docs/wallet.md): one prepaid balance per account, and its ledger of entries.
wallets = Table(
    "wallets",
    metadata,
    Column("seq", Key, primary_key=True, autoincrement=True),
    Column("org_seq", Key, ForeignKey("organizations.seq"), nullable=False),
    Column("account_seq", Key, ForeignKey("accounts.seq"), nullable=False, unique=True),
    Column("id", String(50), nullable=False, unique=True),
    Column("account_id", String(50), nullable=False),
    Column("customer_id", String(50), nullable=False),
    Column("currency", String(3), nullable=False),
    Column("status", String(10), nullable=False),
    Column("effective_from", UtcDateTime, nullable=False),
    # balance = topped_up - consumed - held
    Column("topped_up", MoneyTotal, nullable=False),
    Column("consumed", MoneyTotal, nullable=False),
    Column("held", MoneyTotal, nullable=False),
    # the number of the wallet's last entry (entries are numbered 1, 2, 3, ... in order)
    Column("entries", BigInteger, nullable=False),
    Column("created_at", UtcDateTime, nullable=False),
    Column("updated_at", UtcDateTime, nullable=False),
)

wallet_entries = Table(
    "wallet_entries",
    metadata,
    Column("seq", Key, primary_key=True, autoincrement=True),
    Column("wallet_seq", Key, ForeignKey("wallets.seq"), nullable=False),
    Column("id", String(50), nullable=False, unique=True),
    Column("number", BigInteger, nullable=False),
    # CREDITED (top-up), DEBITED (an invoice or usage), RELEASED (a hold given back; unlisted)
    Column("entry_type", String(10), nullable=False),
    # COMPLETED, ON_HOLD, RELEASED (a released hold; unlisted)
    Column("status", String(10), nullable=False),
    Column("amount", MoneyTotal, nullable=False),
    # the wallet's balance right after the entry
    Column("closing_balance", MoneyTotal, nullable=False),
    Column("entity_id", String(255), nullable=True),
    Column("invoice_id", String(255), nullable=True),
    Column("created_at", UtcDateTime, nullable=False),
    Column("updated_at", UtcDateTime, nullable=False),
    UniqueConstraint("wallet_seq", "number", name="uq_wallet_entries_wallet_number"),
)

# Idempotency-Key of top-ups, unique per organization: the same key and request answer again.
wallet_topup_keys = Table(
    "wallet_topup_keys",
    metadata,
    Column("org_seq", Key, ForeignKey("organizations.seq"), primary_key=True),
    Column("key", String(50), primary_key=True),
    Column("account_seq", Key, ForeignKey("accounts.seq"), nullable=False),
    Column("request_hash", String(64), nullable=False),
    Column("entry_id", String(50), nullable=False),
    Column("created_at", UtcDateTime, nullable=False),
)
