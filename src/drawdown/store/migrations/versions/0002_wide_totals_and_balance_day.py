"""totals with room for 28 digits before the point; the day a balance was counted for

Revision ID: 0002
Revises: 0001

Sums of many amounts (an account's balance totals, an application's applied and remaining
amounts) widen from NUMERIC(28,10) to NUMERIC(38,10) on PostgreSQL; SQLite keeps them as
decimal text, already wide enough. `accounts.bal_as_of` records the day the kept totals were
counted for, so no write changes them with an earlier day's arithmetic; existing rows were
last counted on the UTC day of `bal_updated_at`.
"""

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

WIDENED = {
    "accounts": (
        "bal_active_amount",
        "bal_applicable_left",
        "bal_applicable_held",
        "bal_inapplicable_left",
    ),
    "credit_applications": ("applied_amount", "remaining_amount"),
}


def upgrade() -> None:
    postgresql = op.get_bind().dialect.name == "postgresql"
    if postgresql:
        for table_name, columns in WIDENED.items():
            for column in columns:
                op.alter_column(
                    table_name,
                    column,
                    type_=sa.Numeric(38, 10),
                    existing_type=sa.Numeric(28, 10),
                    existing_nullable=False,
                )
    op.add_column("accounts", sa.Column("bal_as_of", sa.Date(), nullable=True))
    if postgresql:
        op.execute("UPDATE accounts SET bal_as_of = (bal_updated_at AT TIME ZONE 'UTC')::date")
    else:
        # SQLite keeps timestamps as UTC text ('YYYY-MM-DD HH:MM:SS...') and dates as text.
        op.execute("UPDATE accounts SET bal_as_of = substr(bal_updated_at, 1, 10)")
    with op.batch_alter_table("accounts") as batch:
        batch.alter_column("bal_as_of", existing_type=sa.Date(), nullable=False)


def downgrade() -> None:
    with op.batch_alter_table("accounts") as batch:
        batch.drop_column("bal_as_of")
    if op.get_bind().dialect.name == "postgresql":
        for table_name, columns in WIDENED.items():
            for column in columns:
                op.alter_column(
                    table_name,
                    column,
                    type_=sa.Numeric(28, 10),
                    existing_type=sa.Numeric(38, 10),
                    existing_nullable=False,
                )
