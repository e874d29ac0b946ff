"""usage: meters and their rates, events, running totals, what the clean-up folded away

Revision ID: 0005
Revises: 0004

Events wait as PENDING (a partial index holds just those, in the order they apply) until the
transaction that applies them commits; applying records per event and meter what each credit
paid and on which ledger line (`results`), and moves the running totals per (account, meter).
`accounts.usage_applied_through` keeps the latest timestamp applied. The clean-up deletes old
events and adds what they recorded to `usage_purged` and `usage_purged_lines`, so the totals and
`drawdown verify` stay whole (docs/usage.md).
"""

import sqlalchemy as sa
from alembic import op

from drawdown.store.column_types import Money, MoneyTotal, UtcDateTime

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

ByteOrderId = sa.String(length=50).with_variant(sa.String(length=50, collation="C"), "postgresql")
EventId = sa.String(length=512).with_variant(sa.String(length=512, collation="C"), "postgresql")
PENDING = sa.text("status = 'PENDING'")
SUMS = ("quantity", "cost", "paid_by_credits", "paid_by_wallet", "uncovered")

POSTGRESQL_CHECKS = {
    "usage_meter_rates": {
        "rate_valid": "credits >= 0 AND per_quantity > 0",
    },
    "usage_events": {
        "status_known": "status IN ('PENDING', 'APPLIED', 'UNMETERED')",
    },
    "usage_totals": {
        "sums_not_negative": (
            "quantity >= 0 AND cost >= 0 AND paid_by_credits >= 0 AND paid_by_wallet >= 0"
            " AND uncovered >= 0 AND events >= 0"
        ),
    },
}


def _sums_table(name: str) -> None:
    op.create_table(
        name,
        sa.Column("account_seq", sa.BigInteger().with_variant(sa.Integer(), "sqlite")),
        sa.Column("meter_seq", sa.BigInteger().with_variant(sa.Integer(), "sqlite")),
        sa.Column("org_seq", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        *(sa.Column(column, MoneyTotal(), nullable=False) for column in SUMS),
        sa.Column("events", sa.BigInteger(), nullable=False),
        sa.ForeignKeyConstraint(
            ["account_seq"], ["accounts.seq"], name=op.f(f"fk_{name}_account_seq_accounts")
        ),
        sa.ForeignKeyConstraint(
            ["meter_seq"], ["usage_meters.seq"], name=op.f(f"fk_{name}_meter_seq_usage_meters")
        ),
        sa.ForeignKeyConstraint(
            ["org_seq"], ["organizations.seq"], name=op.f(f"fk_{name}_org_seq_organizations")
        ),
        sa.PrimaryKeyConstraint("account_seq", "meter_seq", name=op.f(f"pk_{name}")),
    )


def upgrade() -> None:
    key = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
    op.add_column("accounts", sa.Column("usage_applied_through", UtcDateTime(), nullable=True))
    op.create_table(
        "usage_meters",
        sa.Column("seq", key, autoincrement=True, nullable=False),
        sa.Column("org_seq", key, nullable=False),
        sa.Column("id", ByteOrderId, nullable=False),
        sa.Column("name", sa.String(length=255), nullable=False),
        sa.Column("event_schema_name", sa.String(length=50), nullable=False),
        sa.Column("aggregation", sa.String(length=10), nullable=False),
        sa.Column("attribute", sa.String(length=50), nullable=True),
        sa.Column("filters", sa.JSON(), nullable=False),
        sa.Column("status", sa.String(length=10), nullable=False),
        sa.Column("created_at", UtcDateTime(), nullable=False),
        sa.Column("updated_at", UtcDateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["org_seq"], ["organizations.seq"], name=op.f("fk_usage_meters_org_seq_organizations")
        ),
        sa.PrimaryKeyConstraint("seq", name=op.f("pk_usage_meters")),
        sa.UniqueConstraint("org_seq", "id", name="uq_usage_meters_org_id"),
    )
    op.create_table(
        "usage_meter_rates",
        sa.Column("seq", key, autoincrement=True, nullable=False),
        sa.Column("meter_seq", key, nullable=False),
        sa.Column("credits", Money(), nullable=False),
        sa.Column("per_quantity", Money(), nullable=False),
        sa.Column("effective_from", UtcDateTime(), nullable=True),
        sa.Column("created_at", UtcDateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["meter_seq"],
            ["usage_meters.seq"],
            name=op.f("fk_usage_meter_rates_meter_seq_usage_meters"),
        ),
        sa.PrimaryKeyConstraint("seq", name=op.f("pk_usage_meter_rates")),
    )
    op.create_index(
        "ix_usage_meter_rates_meter_seq", "usage_meter_rates", ["meter_seq", "seq"], unique=False
    )
    op.create_table(
        "usage_events",
        sa.Column("seq", key, autoincrement=True, nullable=False),
        sa.Column("org_seq", key, nullable=False),
        sa.Column("account_seq", key, nullable=False),
        sa.Column("id", EventId, nullable=False),
        sa.Column("schema_name", sa.String(length=50), nullable=False),
        sa.Column("occurred_at", UtcDateTime(), nullable=False),
        sa.Column("content_hash", sa.String(length=64), nullable=False),
        sa.Column("content", sa.JSON(), nullable=False),
        sa.Column("status", sa.String(length=10), nullable=False),
        sa.Column("received_at", UtcDateTime(), nullable=False),
        sa.Column("applied_at", UtcDateTime(), nullable=True),
        sa.Column("results", sa.JSON(), nullable=True),
        sa.Column("meter_ids", sa.Text(), nullable=True),
        sa.ForeignKeyConstraint(
            ["org_seq"], ["organizations.seq"], name=op.f("fk_usage_events_org_seq_organizations")
        ),
        sa.ForeignKeyConstraint(
            ["account_seq"], ["accounts.seq"], name=op.f("fk_usage_events_account_seq_accounts")
        ),
        sa.PrimaryKeyConstraint("seq", name=op.f("pk_usage_events")),
        sa.UniqueConstraint("org_seq", "id", name="uq_usage_events_org_id"),
    )
    op.create_index(
        "ix_usage_events_account_time",
        "usage_events",
        ["account_seq", "occurred_at", "id"],
        unique=False,
    )
    op.create_index(
        "ix_usage_events_pending",
        "usage_events",
        ["account_seq", "occurred_at", "id"],
        unique=False,
        postgresql_where=PENDING,
        sqlite_where=PENDING,
    )
    _sums_table("usage_totals")
    _sums_table("usage_purged")
    op.create_table(
        "usage_purged_lines",
        sa.Column("line_id", sa.String(length=50), nullable=False),
        sa.Column("amount", MoneyTotal(), nullable=False),
        sa.PrimaryKeyConstraint("line_id", name=op.f("pk_usage_purged_lines")),
    )
    if op.get_bind().dialect.name == "postgresql":
        for table_name, table_checks in POSTGRESQL_CHECKS.items():
            for name, sql in table_checks.items():
                op.create_check_constraint(name, table_name, sa.text(sql))


def downgrade() -> None:
    op.drop_table("usage_purged_lines")
    op.drop_table("usage_purged")
    op.drop_table("usage_totals")
    op.drop_index("ix_usage_events_pending", table_name="usage_events")
    op.drop_index("ix_usage_events_account_time", table_name="usage_events")
    op.drop_table("usage_events")
    op.drop_index("ix_usage_meter_rates_meter_seq", table_name="usage_meter_rates")
    op.drop_table("usage_meter_rates")
    op.drop_table("usage_meters")
    with op.batch_alter_table("accounts") as batch:
        batch.drop_column("usage_applied_through")
