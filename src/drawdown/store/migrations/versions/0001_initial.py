"""initial schema

Revision ID: 0001
Revises:
"""

import sqlalchemy as sa
from alembic import op

from drawdown.store.column_types import Money, UtcDateTime

ByteOrderId = sa.String(length=50).with_variant(sa.String(length=50, collation="C"), "postgresql")

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


# Money rules the database enforces itself. PostgreSQL checks the arithmetic; SQLite keeps
# amounts as text, so there it checks signs and `drawdown verify` checks the sums.
POSTGRESQL_CHECKS = {
    "credits": {
        "credit_amount_positive": "credit_amount > 0",
        "parts_not_negative": (
            "consumed_amount >= 0 AND hold_amount >= 0 AND expired_amount >= 0"
            " AND voided_amount >= 0"
        ),
        "parts_within_amount": (
            "consumed_amount + hold_amount + expired_amount + voided_amount <= credit_amount"
        ),
        "status_known": "status IN ('ACTIVE', 'CONSUMED', 'EXPIRED', 'VOIDED')",
    },
    "credit_transactions": {
        "amount_positive": "amount > 0",
        "type_known": "transaction_type IN ('CREDITED', 'DEBITED', 'EXPIRED', 'VOIDED')",
    },
    "credit_applications": {
        "amounts_not_negative": "applied_amount >= 0 AND remaining_amount >= 0",
    },
    "accounts": {
        "balance_not_negative": (
            "bal_active_amount >= 0 AND bal_applicable_left >= 0 AND bal_applicable_held >= 0"
            " AND bal_inapplicable_left >= 0"
        ),
    },
}

SQLITE_CHECKS = {
    "credits": {
        "credit_amount_positive": "substr(credit_amount, 1, 1) <> '-' AND credit_amount <> '0'",
        "parts_not_negative": (
            "substr(consumed_amount, 1, 1) <> '-' AND substr(hold_amount, 1, 1) <> '-'"
            " AND substr(expired_amount, 1, 1) <> '-' AND substr(voided_amount, 1, 1) <> '-'"
        ),
        "status_known": "status IN ('ACTIVE', 'CONSUMED', 'EXPIRED', 'VOIDED')",
    },
    "credit_transactions": {
        "amount_positive": "substr(amount, 1, 1) <> '-' AND amount <> '0'",
        "type_known": "transaction_type IN ('CREDITED', 'DEBITED', 'EXPIRED', 'VOIDED')",
    },
}


def upgrade() -> None:
    op.create_table(
        "organizations",
        sa.Column(
            "seq",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column("name", sa.String(length=100), nullable=False),
        sa.Column("created_at", UtcDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("seq", name=op.f("pk_organizations")),
        sa.UniqueConstraint("name", name=op.f("uq_organizations_name")),
    )
    op.create_table(
        "api_keys",
        sa.Column(
            "seq",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column("org_seq", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("key_hash", sa.String(length=64), nullable=False),
        sa.Column("read_only", sa.Boolean(), nullable=False),
        sa.Column("created_at", UtcDateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["org_seq"], ["organizations.seq"], name=op.f("fk_api_keys_org_seq_organizations")
        ),
        sa.PrimaryKeyConstraint("seq", name=op.f("pk_api_keys")),
        sa.UniqueConstraint("key_hash", name=op.f("uq_api_keys_key_hash")),
    )
    op.create_table(
        "customers",
        sa.Column(
            "seq",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column("org_seq", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("id", sa.String(length=50), nullable=False),
        sa.Column("name", sa.String(length=255), nullable=False),
        sa.Column("primary_email", sa.String(length=320), nullable=False),
        sa.Column("billing_address", sa.String(length=1000), nullable=False),
        sa.Column("address", sa.JSON(), nullable=False),
        sa.Column("settings", sa.JSON(), nullable=True),
        sa.Column("status", sa.String(length=20), nullable=False),
        sa.Column("created_at", UtcDateTime(), nullable=False),
        sa.Column("updated_at", UtcDateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["org_seq"], ["organizations.seq"], name=op.f("fk_customers_org_seq_organizations")
        ),
        sa.PrimaryKeyConstraint("seq", name=op.f("pk_customers")),
        sa.UniqueConstraint("org_seq", "id", name="uq_customers_org_id"),
    )
    op.create_table(
        "accounts",
        sa.Column(
            "seq",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column("org_seq", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("id", sa.String(length=50), nullable=False),
        sa.Column(
            "customer_seq", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False
        ),
        sa.Column("customer_id", sa.String(length=50), nullable=False),
        sa.Column("name", sa.String(length=255), nullable=False),
        sa.Column("invoice_currency", sa.String(length=3), nullable=False),
        sa.Column("status", sa.String(length=20), nullable=False),
        sa.Column("details", sa.JSON(), nullable=False),
        sa.Column("created_at", UtcDateTime(), nullable=False),
        sa.Column("updated_at", UtcDateTime(), nullable=False),
        sa.Column("bal_active_amount", Money(), nullable=False),
        sa.Column("bal_applicable_left", Money(), nullable=False),
        sa.Column("bal_applicable_held", Money(), nullable=False),
        sa.Column("bal_inapplicable_left", Money(), nullable=False),
        sa.Column("bal_valid_through", sa.Date(), nullable=True),
        sa.Column("bal_updated_at", UtcDateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["customer_seq"], ["customers.seq"], name=op.f("fk_accounts_customer_seq_customers")
        ),
        sa.ForeignKeyConstraint(
            ["org_seq"], ["organizations.seq"], name=op.f("fk_accounts_org_seq_organizations")
        ),
        sa.PrimaryKeyConstraint("seq", name=op.f("pk_accounts")),
        sa.UniqueConstraint("org_seq", "id", name="uq_accounts_org_id"),
    )
    op.create_index(
        "ix_accounts_bal_valid_through", "accounts", ["bal_valid_through"], unique=False
    )
    op.create_table(
        "credit_applications",
        sa.Column(
            "seq",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column("org_seq", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column(
            "account_seq", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False
        ),
        sa.Column("invoice_id", sa.String(length=255), nullable=False),
        sa.Column("mode", sa.String(length=10), nullable=False),
        sa.Column("status", sa.String(length=10), nullable=False),
        sa.Column("as_of", sa.Date(), nullable=False),
        sa.Column("request_hash", sa.String(length=64), nullable=False),
        sa.Column("applied_amount", Money(), nullable=False),
        sa.Column("remaining_amount", Money(), nullable=False),
        sa.Column("line_items", sa.JSON(), nullable=False),
        sa.Column("created_at", UtcDateTime(), nullable=False),
        sa.Column("updated_at", UtcDateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["account_seq"],
            ["accounts.seq"],
            name=op.f("fk_credit_applications_account_seq_accounts"),
        ),
        sa.ForeignKeyConstraint(
            ["org_seq"],
            ["organizations.seq"],
            name=op.f("fk_credit_applications_org_seq_organizations"),
        ),
        sa.PrimaryKeyConstraint("seq", name=op.f("pk_credit_applications")),
        sa.UniqueConstraint(
            "account_seq", "invoice_id", name="uq_credit_applications_account_invoice"
        ),
    )
    op.create_table(
        "credits",
        sa.Column(
            "seq",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column("org_seq", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column(
            "account_seq", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False
        ),
        # byte order on PostgreSQL too, so the drawdown order (which ends on id) is an index scan
        sa.Column("id", ByteOrderId, nullable=False),
        sa.Column("account_id", sa.String(length=50), nullable=False),
        sa.Column("customer_id", sa.String(length=50), nullable=False),
        sa.Column("credit_unit", sa.String(length=3), nullable=False),
        sa.Column("purpose", sa.String(length=255), nullable=False),
        sa.Column("applicable_entity_ids", sa.JSON(), nullable=True),
        sa.Column("effective_from", sa.Date(), nullable=False),
        sa.Column("effective_until", sa.Date(), nullable=True),
        sa.Column("credit_amount", Money(), nullable=False),
        sa.Column("priority", sa.Integer(), nullable=False),
        sa.Column("grantor_id", sa.String(length=255), nullable=True),
        sa.Column("idempotency_key", sa.String(length=255), nullable=True),
        sa.Column("request_hash", sa.String(length=64), nullable=False),
        sa.Column("status", sa.String(length=10), nullable=False),
        sa.Column("consumed_amount", Money(), nullable=False),
        sa.Column("hold_amount", Money(), nullable=False),
        sa.Column("expired_amount", Money(), nullable=False),
        sa.Column("voided_amount", Money(), nullable=False),
        sa.Column("created_at", UtcDateTime(), nullable=False),
        sa.Column("updated_at", UtcDateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["account_seq"], ["accounts.seq"], name=op.f("fk_credits_account_seq_accounts")
        ),
        sa.ForeignKeyConstraint(
            ["org_seq"], ["organizations.seq"], name=op.f("fk_credits_org_seq_organizations")
        ),
        sa.PrimaryKeyConstraint("seq", name=op.f("pk_credits")),
        sa.UniqueConstraint("id", name=op.f("uq_credits_id")),
        sa.UniqueConstraint("org_seq", "idempotency_key", name="uq_credits_org_idempotency_key"),
    )
    op.create_index(
        "ix_credits_drawdown_order",
        "credits",
        [
            "account_seq",
            "status",
            "priority",
            "effective_until",
            "effective_from",
            "created_at",
            "id",
        ],
        unique=False,
    )
    op.create_index("ix_credits_org_seq_seq", "credits", ["org_seq", "seq"], unique=False)
    op.create_table(
        "credit_transactions",
        sa.Column(
            "seq",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column(
            "credit_seq", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False
        ),
        sa.Column("id", sa.String(length=50), nullable=False),
        sa.Column("transaction_type", sa.String(length=10), nullable=False),
        sa.Column("invoice_id", sa.String(length=255), nullable=True),
        sa.Column("entity_id", sa.String(length=255), nullable=True),
        sa.Column("amount", Money(), nullable=False),
        sa.Column("created_at", UtcDateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["credit_seq"], ["credits.seq"], name=op.f("fk_credit_transactions_credit_seq_credits")
        ),
        sa.PrimaryKeyConstraint("seq", name=op.f("pk_credit_transactions")),
        sa.UniqueConstraint("id", name=op.f("uq_credit_transactions_id")),
    )
    op.create_index(
        "ix_credit_transactions_credit_seq",
        "credit_transactions",
        ["credit_seq", "seq"],
        unique=False,
    )

    dialect = op.get_bind().dialect.name
    checks = POSTGRESQL_CHECKS if dialect == "postgresql" else SQLITE_CHECKS
    for table_name, table_checks in checks.items():
        with op.batch_alter_table(table_name) as batch:
            for name, sql in table_checks.items():
                batch.create_check_constraint(name, sa.text(sql))


def downgrade() -> None:
    op.drop_index("ix_credit_transactions_credit_seq", table_name="credit_transactions")
    op.drop_table("credit_transactions")
    op.drop_index("ix_credits_org_seq_seq", table_name="credits")
    op.drop_index("ix_credits_drawdown_order", table_name="credits")
    op.drop_table("credits")
    op.drop_table("credit_applications")
    op.drop_index("ix_accounts_bal_valid_through", table_name="accounts")
    op.drop_table("accounts")
    op.drop_table("customers")
    op.drop_table("api_keys")
    op.drop_table("organizations")
