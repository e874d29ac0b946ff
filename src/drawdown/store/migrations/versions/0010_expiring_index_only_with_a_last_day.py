"""ix_credits_expiring holds only credits with a last day

Revision ID: 0010
Revises: 0009

The index served the sweep's credit.expiring_soon (active credits by `effective_until`), and its
predicate, `status = 'ACTIVE'`, matched every lookup of an account's active credits too. A
generic plan made on a young table's statistics (every new deployment, until autovacuum's first
ANALYZE) then chose it for the burn-down's and the debits' drawdown order, reading all the
active credits of every account, with a filter, for each account a write group loaded: in the
usage bench, 1,000 credits read per account burned. With `effective_until IS NOT NULL` added,
only a query that bounds `effective_until` (the sweep) can use it; the drawdown order is served
by ix_credits_drawdown_order.
"""

import sqlalchemy as sa
from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None

ACTIVE = sa.text("status = 'ACTIVE'")
EXPIRING = sa.text("status = 'ACTIVE' AND effective_until IS NOT NULL")


def _replace(where: sa.TextClause) -> None:
    op.drop_index("ix_credits_expiring", table_name="credits")
    op.create_index(
        "ix_credits_expiring",
        "credits",
        ["effective_until"],
        unique=False,
        postgresql_where=where,
        sqlite_where=where,
    )


def upgrade() -> None:
    _replace(EXPIRING)


def downgrade() -> None:
    _replace(ACTIVE)
