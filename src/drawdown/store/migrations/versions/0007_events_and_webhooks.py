"""events and webhooks: the outbox, endpoints, deliveries and their attempts, balance alert
thresholds and what has fired, credit.expiring_soon and usage.uncovered markers

Revision ID: 0007
Revises: 0006

Every event is written in the transaction of the change that caused it, with one delivery row
per endpoint that takes it; deliveries wait as PENDING (a partial index holds just those,
soonest first) until an attempt succeeds or the retries run out (docs/webhooks.md). Active
credits are indexed by their last day for the sweep's credit.expiring_soon.
"""

import sqlalchemy as sa
from alembic import op

from drawdown.store.column_types import Money, MoneyTotal, UtcDateTime

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None

PENDING = sa.text("status = 'PENDING'")
ACTIVE = sa.text("status = 'ACTIVE'")

POSTGRESQL_CHECKS = {
    "webhook_endpoints": {"status_known": "status IN ('ENABLED', 'DISABLED')"},
    "webhook_deliveries": {
        "status_known": "status IN ('PENDING', 'SUCCEEDED', 'FAILED')",
        "attempts_not_negative": "attempts >= 0",
    },
    "alert_marks": {"threshold_not_negative": "threshold >= 0"},
    "uncovered_marks": {"unreported_not_negative": "unreported >= 0"},
}


def _fk(table: str, column: str, target: str, ondelete: str | None = None) -> sa.Constraint:
    return sa.ForeignKeyConstraint(
        [column],
        [f"{target}.seq"],
        name=op.f(f"fk_{table}_{column}_{target}"),
        ondelete=ondelete,
    )


def upgrade() -> None:
    key = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
    op.create_table(
        "events",
        sa.Column("seq", key, autoincrement=True, nullable=False),
        sa.Column("org_seq", key, nullable=False),
        sa.Column("id", sa.String(length=50), nullable=False),
        sa.Column("type", sa.String(length=40), nullable=False),
        sa.Column("actor", sa.String(length=50), nullable=False),
        sa.Column("account_seq", key, nullable=True),
        sa.Column("occurred_at", UtcDateTime(), nullable=False),
        sa.Column("data", sa.Text(), nullable=False),
        _fk("events", "org_seq", "organizations"),
        _fk("events", "account_seq", "accounts"),
        sa.PrimaryKeyConstraint("seq", name=op.f("pk_events")),
        sa.UniqueConstraint("id", name=op.f("uq_events_id")),
    )
    op.create_index("ix_events_org_seq", "events", ["org_seq", "seq"], unique=False)
    op.create_index("ix_events_org_type", "events", ["org_seq", "type", "seq"], unique=False)
    op.create_index("ix_events_org_time", "events", ["org_seq", "occurred_at"], unique=False)
    op.create_table(
        "webhook_endpoints",
        sa.Column("seq", key, autoincrement=True, nullable=False),
        sa.Column("org_seq", key, nullable=False),
        sa.Column("id", sa.String(length=50), nullable=False),
        sa.Column("url", sa.String(length=2000), nullable=False),
        sa.Column("event_types", sa.Text(), nullable=True),
        sa.Column("description", sa.String(length=500), nullable=True),
        sa.Column("secret", sa.String(length=100), nullable=False),
        sa.Column("previous_secret", sa.String(length=100), nullable=True),
        sa.Column("previous_secret_until", UtcDateTime(), nullable=True),
        sa.Column("status", sa.String(length=10), nullable=False),
        sa.Column("disabled_reason", sa.String(length=1000), nullable=True),
        sa.Column("failing_since", UtcDateTime(), nullable=True),
        sa.Column("created_at", UtcDateTime(), nullable=False),
        sa.Column("updated_at", UtcDateTime(), nullable=False),
        _fk("webhook_endpoints", "org_seq", "organizations"),
        sa.PrimaryKeyConstraint("seq", name=op.f("pk_webhook_endpoints")),
        sa.UniqueConstraint("id", name=op.f("uq_webhook_endpoints_id")),
    )
    op.create_index(
        "ix_webhook_endpoints_org_seq", "webhook_endpoints", ["org_seq", "seq"], unique=False
    )
    op.create_table(
        "webhook_deliveries",
        sa.Column("seq", key, autoincrement=True, nullable=False),
        sa.Column("endpoint_seq", key, nullable=False),
        sa.Column("event_seq", key, nullable=False),
        sa.Column("status", sa.String(length=10), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("next_attempt_at", UtcDateTime(), nullable=True),
        sa.Column("claimed_by", sa.String(length=100), nullable=True),
        sa.Column("claimed_until", UtcDateTime(), nullable=True),
        sa.Column("created_at", UtcDateTime(), nullable=False),
        sa.Column("finished_at", UtcDateTime(), nullable=True),
        _fk("webhook_deliveries", "endpoint_seq", "webhook_endpoints", "CASCADE"),
        _fk("webhook_deliveries", "event_seq", "events"),
        sa.PrimaryKeyConstraint("seq", name=op.f("pk_webhook_deliveries")),
    )
    op.create_index(
        "ix_webhook_deliveries_endpoint",
        "webhook_deliveries",
        ["endpoint_seq", "seq"],
        unique=False,
    )
    op.create_index(
        "ix_webhook_deliveries_due",
        "webhook_deliveries",
        ["next_attempt_at"],
        unique=False,
        postgresql_where=PENDING,
        sqlite_where=PENDING,
    )
    op.create_table(
        "webhook_attempts",
        sa.Column("seq", key, autoincrement=True, nullable=False),
        sa.Column("delivery_seq", key, nullable=False),
        sa.Column("attempted_at", UtcDateTime(), nullable=False),
        sa.Column("status_code", sa.Integer(), nullable=True),
        sa.Column("duration_ms", sa.Integer(), nullable=False),
        sa.Column("error", sa.String(length=500), nullable=True),
        _fk("webhook_attempts", "delivery_seq", "webhook_deliveries", "CASCADE"),
        sa.PrimaryKeyConstraint("seq", name=op.f("pk_webhook_attempts")),
    )
    op.create_index(
        "ix_webhook_attempts_delivery", "webhook_attempts", ["delivery_seq", "seq"], unique=False
    )
    op.create_table(
        "organization_alerts",
        sa.Column("org_seq", key, nullable=False),
        sa.Column("thresholds", sa.JSON(), nullable=False),
        sa.Column("wallet_thresholds", sa.JSON(), nullable=False),
        sa.Column("expiring_soon_days", sa.Integer(), nullable=False),
        sa.Column("updated_at", UtcDateTime(), nullable=False),
        _fk("organization_alerts", "org_seq", "organizations"),
        sa.PrimaryKeyConstraint("org_seq", name=op.f("pk_organization_alerts")),
    )
    op.create_table(
        "account_alerts",
        sa.Column("account_seq", key, nullable=False),
        sa.Column("org_seq", key, nullable=False),
        sa.Column("thresholds", sa.JSON(), nullable=True),
        sa.Column("wallet_thresholds", sa.JSON(), nullable=True),
        sa.Column("updated_at", UtcDateTime(), nullable=False),
        _fk("account_alerts", "account_seq", "accounts"),
        _fk("account_alerts", "org_seq", "organizations"),
        sa.PrimaryKeyConstraint("account_seq", name=op.f("pk_account_alerts")),
    )
    op.create_table(
        "alert_marks",
        sa.Column("account_seq", key, nullable=False),
        sa.Column("kind", sa.String(length=10), nullable=False),
        sa.Column("threshold", Money(), nullable=False),
        sa.Column("fired_at", UtcDateTime(), nullable=False),
        _fk("alert_marks", "account_seq", "accounts"),
        sa.PrimaryKeyConstraint("account_seq", "kind", "threshold", name=op.f("pk_alert_marks")),
    )
    op.create_table(
        "expiring_soon_sent",
        sa.Column("credit_seq", key, nullable=False),
        sa.Column("sent_at", UtcDateTime(), nullable=False),
        _fk("expiring_soon_sent", "credit_seq", "credits"),
        sa.PrimaryKeyConstraint("credit_seq", name=op.f("pk_expiring_soon_sent")),
    )
    op.create_table(
        "uncovered_marks",
        sa.Column("account_seq", key, nullable=False),
        sa.Column("last_sent_at", UtcDateTime(), nullable=True),
        sa.Column("unreported", MoneyTotal(), nullable=False),
        sa.Column("unreported_since", UtcDateTime(), nullable=True),
        _fk("uncovered_marks", "account_seq", "accounts"),
        sa.PrimaryKeyConstraint("account_seq", name=op.f("pk_uncovered_marks")),
    )
    op.create_index(
        "ix_credits_expiring",
        "credits",
        ["effective_until"],
        unique=False,
        postgresql_where=ACTIVE,
        sqlite_where=ACTIVE,
    )
    if op.get_bind().dialect.name == "postgresql":
        for table_name, table_checks in POSTGRESQL_CHECKS.items():
            for name, sql in table_checks.items():
                op.create_check_constraint(name, table_name, sa.text(sql))


def downgrade() -> None:
    op.drop_index("ix_credits_expiring", table_name="credits")
    op.drop_table("uncovered_marks")
    op.drop_table("expiring_soon_sent")
    op.drop_table("alert_marks")
    op.drop_table("account_alerts")
    op.drop_table("organization_alerts")
    op.drop_index("ix_webhook_attempts_delivery", table_name="webhook_attempts")
    op.drop_table("webhook_attempts")
    op.drop_index("ix_webhook_deliveries_due", table_name="webhook_deliveries")
    op.drop_index("ix_webhook_deliveries_endpoint", table_name="webhook_deliveries")
    op.drop_table("webhook_deliveries")
    op.drop_index("ix_webhook_endpoints_org_seq", table_name="webhook_endpoints")
    op.drop_table("webhook_endpoints")
    op.drop_index("ix_events_org_time", table_name="events")
    op.drop_index("ix_events_org_type", table_name="events")
    op.drop_index("ix_events_org_seq", table_name="events")
    op.drop_table("events")
