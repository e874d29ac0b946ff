"""the outbox's clean-up: finished deliveries by when they finished, deliveries by their event

Revision ID: 0008
Revises: 0007

The clean-up (docs/webhooks.md, "Retention") deletes deliveries finished before a cut-off (a
PENDING one has no `finished_at`, so the index holds only what may go), then events no
delivery refers to; without an index on `event_seq` each such question read every delivery.
"""

from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index(
        "ix_webhook_deliveries_finished", "webhook_deliveries", ["finished_at"], unique=False
    )
    op.create_index(
        "ix_webhook_deliveries_event", "webhook_deliveries", ["event_seq"], unique=False
    )


def downgrade() -> None:
    op.drop_index("ix_webhook_deliveries_event", table_name="webhook_deliveries")
    op.drop_index("ix_webhook_deliveries_finished", table_name="webhook_deliveries")
