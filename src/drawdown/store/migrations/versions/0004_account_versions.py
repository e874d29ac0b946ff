"""a version per account, bumped by every write to its ledger

Revision ID: 0004
Revises: 0003

A write transaction on PostgreSQL locks its accounts and reads their credits in one statement.
Under READ COMMITTED that statement reads every table as of its start, while the lock returns
the newest account row: if it waited for a lock while another transaction changed the
account's credits and committed, the credits it read are stale. Every save bumps the version
of each account it writes, so the load sees the difference and reads again (store/versions.py).
"""

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column(
        "accounts",
        sa.Column("version", sa.BigInteger(), server_default=sa.text("0"), nullable=False),
    )


def downgrade() -> None:
    with op.batch_alter_table("accounts") as batch:
        batch.drop_column("version")
