"""wallets: one prepaid balance per account, its entries, top-up idempotency keys; archived
customers and accounts

Revision ID: 0006
Revises: 0005

A wallet keeps its totals (topped up, consumed, held: balance = topped up - consumed - held) and
the number of its last entry; its entries are the append-only ledger that explains them, each
with the balance right after it (docs/wallet.md). `archived_at` marks a deleted customer or
account: reads answer 404, the id stays taken, the ledger stays.
"""

import sqlalchemy as sa
from alembic import op

from drawdown.store.column_types import MoneyTotal, UtcDateTime

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None

POSTGRESQL_CHECKS = {
    "wallets": {
        "status_known": "status IN ('ACTIVE', 'INACTIVE')",
        "totals_not_negative": "topped_up >= 0 AND consumed >= 0 AND held >= 0",
        "balance_not_negative": "topped_up - consumed - held >= 0",
    },
    "wallet_entries": {
        "amount_positive": "amount > 0",
        "closing_balance_not_negative": "closing_balance >= 0",
        "type_known": "entry_type IN ('CREDITED', 'DEBITED', 'RELEASED')",
        "status_known": "status IN ('COMPLETED', 'ON_HOLD', 'RELEASED')",
    },
}

SQLITE_CHECKS = {
    "wallets": {
        "status_known": "status IN ('ACTIVE', 'INACTIVE')",
        "totals_not_negative": (
            "substr(topped_up, 1, 1) <> '-' AND substr(consumed, 1, 1) <> '-'"
            " AND substr(held, 1, 1) <> '-'"
        ),
    },
    "wallet_entries": {
        "amount_positive": "substr(amount, 1, 1) <> '-' AND amount <> '0'",
        "closing_balance_not_negative": "substr(closing_balance, 1, 1) <> '-'",
        "type_known": "entry_type IN ('CREDITED', 'DEBITED', 'RELEASED')",
        "status_known": "status IN ('COMPLETED', 'ON_HOLD', 'RELEASED')",
    },
}


def upgrade() -> None:
    key = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
    with op.batch_alter_table("customers") as batch:
        batch.add_column(sa.Column("archived_at", UtcDateTime(), nullable=True))
    with op.batch_alter_table("accounts") as batch:
        batch.add_column(sa.Column("archived_at", UtcDateTime(), nullable=True))
    op.create_table(
        "wallets",
        sa.Column("seq", key, autoincrement=True, nullable=False),
        sa.Column("org_seq", key, nullable=False),
        sa.Column("account_seq", key, nullable=False),
        sa.Column("id", sa.String(length=50), nullable=False),
        sa.Column("account_id", sa.String(length=50), nullable=False),
        sa.Column("customer_id", sa.String(length=50), nullable=False),
        sa.Column("currency", sa.String(length=3), nullable=False),
        sa.Column("status", sa.String(length=10), nullable=False),
        sa.Column("effective_from", UtcDateTime(), nullable=False),
        sa.Column("topped_up", MoneyTotal(), nullable=False),
        sa.Column("consumed", MoneyTotal(), nullable=False),
        sa.Column("held", MoneyTotal(), nullable=False),
        sa.Column("entries", sa.BigInteger(), nullable=False),
        sa.Column("created_at", UtcDateTime(), nullable=False),
        sa.Column("updated_at", UtcDateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["org_seq"], ["organizations.seq"], name=op.f("fk_wallets_org_seq_organizations")
        ),
        sa.ForeignKeyConstraint(
            ["account_seq"], ["accounts.seq"], name=op.f("fk_wallets_account_seq_accounts")
        ),
        sa.PrimaryKeyConstraint("seq", name=op.f("pk_wallets")),
        sa.UniqueConstraint("account_seq", name=op.f("uq_wallets_account_seq")),
        sa.UniqueConstraint("id", name=op.f("uq_wallets_id")),
    )
    op.create_table(
        "wallet_entries",
        sa.Column("seq", key, autoincrement=True, nullable=False),
        sa.Column("wallet_seq", key, nullable=False),
        sa.Column("id", sa.String(length=50), nullable=False),
        sa.Column("number", sa.BigInteger(), nullable=False),
        sa.Column("entry_type", sa.String(length=10), nullable=False),
        sa.Column("status", sa.String(length=10), nullable=False),
        sa.Column("amount", MoneyTotal(), nullable=False),
        sa.Column("closing_balance", MoneyTotal(), nullable=False),
        sa.Column("entity_id", sa.String(length=255), nullable=True),
        sa.Column("invoice_id", sa.String(length=255), nullable=True),
        sa.Column("created_at", UtcDateTime(), nullable=False),
        sa.Column("updated_at", UtcDateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["wallet_seq"], ["wallets.seq"], name=op.f("fk_wallet_entries_wallet_seq_wallets")
        ),
        sa.PrimaryKeyConstraint("seq", name=op.f("pk_wallet_entries")),
        sa.UniqueConstraint("id", name=op.f("uq_wallet_entries_id")),
        sa.UniqueConstraint("wallet_seq", "number", name="uq_wallet_entries_wallet_number"),
    )
    op.create_table(
        "wallet_topup_keys",
        sa.Column("org_seq", key, nullable=False),
        sa.Column("key", sa.String(length=50), nullable=False),
        sa.Column("account_seq", key, nullable=False),
        sa.Column("request_hash", sa.String(length=64), nullable=False),
        sa.Column("entry_id", sa.String(length=50), nullable=False),
        sa.Column("created_at", UtcDateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["org_seq"],
            ["organizations.seq"],
            name=op.f("fk_wallet_topup_keys_org_seq_organizations"),
        ),
        sa.ForeignKeyConstraint(
            ["account_seq"],
            ["accounts.seq"],
            name=op.f("fk_wallet_topup_keys_account_seq_accounts"),
        ),
        sa.PrimaryKeyConstraint("org_seq", "key", name=op.f("pk_wallet_topup_keys")),
    )
    dialect = op.get_bind().dialect.name
    checks = POSTGRESQL_CHECKS if dialect == "postgresql" else SQLITE_CHECKS
    for table_name, table_checks in checks.items():
        with op.batch_alter_table(table_name) as batch:
            for name, sql in table_checks.items():
                batch.create_check_constraint(name, sa.text(sql))


def downgrade() -> None:
    op.drop_table("wallet_topup_keys")
    op.drop_table("wallet_entries")
    op.drop_table("wallets")
    with op.batch_alter_table("accounts") as batch:
        batch.drop_column("archived_at")
    with op.batch_alter_table("customers") as batch:
        batch.drop_column("archived_at")
