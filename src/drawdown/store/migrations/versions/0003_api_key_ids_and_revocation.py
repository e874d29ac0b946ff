"""api keys get a public id and can be revoked

Revision ID: 0003
Revises: 0001
"""

import sqlalchemy as sa
from alembic import op

from drawdown.store.column_types import UtcDateTime

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("api_keys", sa.Column("id", sa.String(length=50), nullable=True))
    op.add_column("api_keys", sa.Column("revoked_at", UtcDateTime(), nullable=True))
    # keys made before ids existed are named after their row
    op.execute("UPDATE api_keys SET id = 'key.' || CAST(seq AS VARCHAR(20)) WHERE id IS NULL")
    with op.batch_alter_table("api_keys") as batch:
        batch.alter_column("id", existing_type=sa.String(length=50), nullable=False)
        batch.create_unique_constraint(op.f("uq_api_keys_id"), ["id"])


def downgrade() -> None:
    with op.batch_alter_table("api_keys") as batch:
        batch.drop_constraint(op.f("uq_api_keys_id"), type_="unique")
        batch.drop_column("revoked_at")
        batch.drop_column("id")
