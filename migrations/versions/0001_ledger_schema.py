"""ledger schema

Revision ID: 0001
Revises:
Create Date: 2026-11-24 09:07:16.982838
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0001"
down_revision: str | Sequence[str] | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


GUARDS = [
    # Ledger entries and audit records are append-only: the database refuses edits.
    """
    CREATE FUNCTION vaultcraft_refuse_change() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
        RAISE EXCEPTION '% on % is refused: the table is append-only', TG_OP, TG_TABLE_NAME
            USING ERRCODE = 'insufficient_privilege';
    END $$
    """,
    """
    CREATE TRIGGER ledger_entries_append_only BEFORE UPDATE OR DELETE OR TRUNCATE
    ON ledger_entries FOR EACH STATEMENT EXECUTE FUNCTION vaultcraft_refuse_change()
    """,
    # Audit records may be sealed once (hash chain columns set from NULL); nothing else.
    """
    CREATE FUNCTION vaultcraft_audit_seal_only() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
        IF TG_OP = 'UPDATE' AND OLD.hash IS NULL AND NEW.hash IS NOT NULL
           AND (to_jsonb(OLD) - 'chain_seq' - 'prev_hash' - 'hash')
             = (to_jsonb(NEW) - 'chain_seq' - 'prev_hash' - 'hash') THEN
            RETURN NEW;
        END IF;
        RAISE EXCEPTION '% on audit_logs is refused: audit records are append-only', TG_OP
            USING ERRCODE = 'insufficient_privilege';
    END $$
    """,
    """
    CREATE TRIGGER audit_logs_append_only BEFORE UPDATE OR DELETE
    ON audit_logs FOR EACH ROW EXECUTE FUNCTION vaultcraft_audit_seal_only()
    """,
    """
    CREATE TRIGGER audit_logs_no_truncate BEFORE TRUNCATE
    ON audit_logs FOR EACH STATEMENT EXECUTE FUNCTION vaultcraft_refuse_change()
    """,
    # A transaction that has left PENDING is final: no column of it changes again.
    """
    CREATE FUNCTION vaultcraft_final_is_final() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
        IF TG_OP = 'DELETE' THEN
            RAISE EXCEPTION 'transactions are never deleted' USING ERRCODE = 'insufficient_privilege';
        END IF;
        IF OLD.status <> 'PENDING' THEN
            RAISE EXCEPTION 'transaction % is % and final', OLD.id, OLD.status
                USING ERRCODE = 'insufficient_privilege';
        END IF;
        RETURN NEW;
    END $$
    """,
    """
    CREATE TRIGGER transactions_final_is_final BEFORE UPDATE OR DELETE
    ON transactions FOR EACH ROW EXECUTE FUNCTION vaultcraft_final_is_final()
    """,
]


def upgrade() -> None:
    op.create_table(
        "organizations",
        sa.Column("id", sa.UUID(), server_default=sa.text("gen_random_uuid()"), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("default_currency", sa.String(length=3), nullable=False),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_organizations")),
    )
    op.create_table(
        "audit_logs",
        sa.Column("id", sa.BigInteger(), sa.Identity(always=False), nullable=False),
        sa.Column("organization_id", sa.UUID(), nullable=True),
        sa.Column("actor_id", sa.UUID(), nullable=True),
        sa.Column("action", sa.String(length=64), nullable=False),
        sa.Column("resource_type", sa.String(length=32), nullable=True),
        sa.Column("resource_id", sa.String(length=64), nullable=True),
        sa.Column("client_address", sa.String(length=64), nullable=True),
        sa.Column("user_agent", sa.String(length=512), nullable=True),
        sa.Column("request_id", sa.String(length=128), nullable=True),
        sa.Column(
            "details",
            postgresql.JSONB(astext_type=sa.Text()),
            server_default=sa.text("'{}'::jsonb"),
            nullable=False,
        ),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.Column("chain_seq", sa.BigInteger(), nullable=True),
        sa.Column("prev_hash", sa.String(length=64), nullable=True),
        sa.Column("hash", sa.String(length=64), nullable=True),
        sa.ForeignKeyConstraint(
            ["organization_id"],
            ["organizations.id"],
            name=op.f("fk_audit_logs_organization_id_organizations"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_audit_logs")),
        sa.UniqueConstraint(
            "organization_id", "chain_seq", name=op.f("uq_audit_logs_organization_id_chain_seq")
        ),
    )
    op.create_index(
        "ix_audit_logs_organization_id_id", "audit_logs", ["organization_id", "id"], unique=False
    )
    op.create_index(
        "ix_audit_logs_unsealed",
        "audit_logs",
        ["id"],
        unique=False,
        postgresql_where=sa.text("hash IS NULL"),
    )
    op.create_table(
        "outbox",
        sa.Column("id", sa.BigInteger(), sa.Identity(always=False), nullable=False),
        sa.Column(
            "event_id", sa.UUID(), server_default=sa.text("gen_random_uuid()"), nullable=False
        ),
        sa.Column("organization_id", sa.UUID(), nullable=False),
        sa.Column("type", sa.String(length=64), nullable=False),
        sa.Column("data", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.Column("claimed_until", sa.DateTime(timezone=True), nullable=True),
        sa.Column("relayed_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["organization_id"],
            ["organizations.id"],
            name=op.f("fk_outbox_organization_id_organizations"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_outbox")),
        sa.UniqueConstraint("event_id", name=op.f("uq_outbox_event_id")),
    )
    op.create_index(
        "ix_outbox_organization_id_id", "outbox", ["organization_id", "id"], unique=False
    )
    op.create_index(
        "ix_outbox_unrelayed",
        "outbox",
        ["id"],
        unique=False,
        postgresql_where=sa.text("relayed_at IS NULL"),
    )
    op.create_table(
        "settlements",
        sa.Column("id", sa.UUID(), server_default=sa.text("gen_random_uuid()"), nullable=False),
        sa.Column("payer_organization_id", sa.UUID(), nullable=False),
        sa.Column("payee_organization_id", sa.UUID(), nullable=False),
        sa.Column("currency", sa.String(length=3), nullable=False),
        sa.Column("gross_payer_to_payee", sa.BigInteger(), nullable=False),
        sa.Column("gross_payee_to_payer", sa.BigInteger(), nullable=False),
        sa.Column("net_amount", sa.BigInteger(), nullable=False),
        sa.Column("transfer_count", sa.Integer(), nullable=False),
        sa.Column("window_start", sa.DateTime(timezone=True), nullable=True),
        sa.Column("window_end", sa.DateTime(timezone=True), nullable=True),
        sa.Column(
            "status", sa.String(length=10), server_default=sa.text("'COMPLETED'"), nullable=False
        ),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.CheckConstraint("net_amount >= 0", name=op.f("ck_settlements_net_non_negative")),
        sa.ForeignKeyConstraint(
            ["payee_organization_id"],
            ["organizations.id"],
            name=op.f("fk_settlements_payee_organization_id_organizations"),
        ),
        sa.ForeignKeyConstraint(
            ["payer_organization_id"],
            ["organizations.id"],
            name=op.f("fk_settlements_payer_organization_id_organizations"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_settlements")),
    )
    op.create_index(
        "ix_settlements_payee_organization_id_created_at",
        "settlements",
        ["payee_organization_id", "created_at"],
        unique=False,
    )
    op.create_index(
        "ix_settlements_payer_organization_id_created_at",
        "settlements",
        ["payer_organization_id", "created_at"],
        unique=False,
    )
    op.create_table(
        "users",
        sa.Column("id", sa.UUID(), server_default=sa.text("gen_random_uuid()"), nullable=False),
        sa.Column("organization_id", sa.UUID(), nullable=False),
        sa.Column("email", sa.String(length=320), nullable=False),
        sa.Column("password_hash", sa.LargeBinary(), nullable=False),
        sa.Column("full_name", sa.String(length=200), nullable=False),
        sa.Column("role", sa.String(length=10), nullable=False),
        sa.Column("is_active", sa.Boolean(), server_default=sa.text("true"), nullable=False),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.CheckConstraint("role IN ('ADMIN', 'MEMBER')", name=op.f("ck_users_role")),
        sa.ForeignKeyConstraint(
            ["organization_id"],
            ["organizations.id"],
            name=op.f("fk_users_organization_id_organizations"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_users")),
    )
    op.create_index(
        "ix_users_organization_id_created_at",
        "users",
        ["organization_id", "created_at"],
        unique=False,
    )
    op.create_index(
        "uq_users_email_lower", "users", [sa.literal_column("lower(email)")], unique=True
    )
    op.create_table(
        "counterparties",
        sa.Column("organization_id", sa.UUID(), nullable=False),
        sa.Column("counterparty_organization_id", sa.UUID(), nullable=False),
        sa.Column("created_by", sa.UUID(), nullable=True),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.CheckConstraint(
            "organization_id <> counterparty_organization_id",
            name=op.f("ck_counterparties_not_self"),
        ),
        sa.ForeignKeyConstraint(
            ["counterparty_organization_id"],
            ["organizations.id"],
            name=op.f("fk_counterparties_counterparty_organization_id_organizations"),
        ),
        sa.ForeignKeyConstraint(
            ["created_by"], ["users.id"], name=op.f("fk_counterparties_created_by_users")
        ),
        sa.ForeignKeyConstraint(
            ["organization_id"],
            ["organizations.id"],
            name=op.f("fk_counterparties_organization_id_organizations"),
        ),
        sa.PrimaryKeyConstraint(
            "organization_id", "counterparty_organization_id", name=op.f("pk_counterparties")
        ),
    )
    op.create_table(
        "reconciliation_runs",
        sa.Column("id", sa.UUID(), server_default=sa.text("gen_random_uuid()"), nullable=False),
        sa.Column("organization_id", sa.UUID(), nullable=True),
        sa.Column(
            "mode", sa.String(length=12), server_default=sa.text("'INCREMENTAL'"), nullable=False
        ),
        sa.Column(
            "status", sa.String(length=10), server_default=sa.text("'PENDING'"), nullable=False
        ),
        sa.Column("requested_by", sa.UUID(), nullable=True),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("wallets_checked", sa.BigInteger(), server_default=sa.text("0"), nullable=False),
        sa.Column("entries_checked", sa.BigInteger(), server_default=sa.text("0"), nullable=False),
        sa.Column("pending_requeued", sa.Integer(), server_default=sa.text("0"), nullable=False),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.CheckConstraint(
            "status IN ('PENDING', 'RUNNING', 'COMPLETED', 'FAILED')",
            name=op.f("ck_reconciliation_runs_status"),
        ),
        sa.ForeignKeyConstraint(
            ["organization_id"],
            ["organizations.id"],
            name=op.f("fk_reconciliation_runs_organization_id_organizations"),
        ),
        sa.ForeignKeyConstraint(
            ["requested_by"], ["users.id"], name=op.f("fk_reconciliation_runs_requested_by_users")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_reconciliation_runs")),
    )
    op.create_index(
        "ix_reconciliation_runs_created_at", "reconciliation_runs", ["created_at"], unique=False
    )
    op.create_table(
        "wallets",
        sa.Column("id", sa.UUID(), server_default=sa.text("gen_random_uuid()"), nullable=False),
        sa.Column("organization_id", sa.UUID(), nullable=False),
        sa.Column("user_id", sa.UUID(), nullable=True),
        sa.Column("type", sa.String(length=10), nullable=False),
        sa.Column("currency", sa.String(length=3), nullable=False),
        sa.Column(
            "status", sa.String(length=10), server_default=sa.text("'ACTIVE'"), nullable=False
        ),
        sa.Column("balance", sa.BigInteger(), server_default=sa.text("0"), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=True),
        sa.Column("counterparty_organization_id", sa.UUID(), nullable=True),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.Column(
            "updated_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.CheckConstraint(
            "(type = 'CLEARING') = (counterparty_organization_id IS NOT NULL)",
            name=op.f("ck_wallets_clearing_peer"),
        ),
        sa.CheckConstraint(
            "status IN ('ACTIVE', 'LOCKED', 'CLOSED')", name=op.f("ck_wallets_status")
        ),
        sa.CheckConstraint(
            "type IN ('PRIMARY', 'BONUS', 'SYSTEM', 'CLEARING')", name=op.f("ck_wallets_type")
        ),
        sa.CheckConstraint(
            "type IN ('SYSTEM', 'CLEARING') OR balance >= 0", name=op.f("ck_wallets_no_overdraft")
        ),
        sa.ForeignKeyConstraint(
            ["counterparty_organization_id"],
            ["organizations.id"],
            name=op.f("fk_wallets_counterparty_organization_id_organizations"),
        ),
        sa.ForeignKeyConstraint(
            ["organization_id"],
            ["organizations.id"],
            name=op.f("fk_wallets_organization_id_organizations"),
        ),
        sa.ForeignKeyConstraint(["user_id"], ["users.id"], name=op.f("fk_wallets_user_id_users")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_wallets")),
    )
    op.create_index(
        "ix_wallets_organization_id_created_at",
        "wallets",
        ["organization_id", "created_at"],
        unique=False,
    )
    op.create_index("ix_wallets_user_id", "wallets", ["user_id"], unique=False)
    op.create_index(
        "uq_wallets_clearing_per_peer",
        "wallets",
        ["organization_id", "counterparty_organization_id", "currency"],
        unique=True,
        postgresql_where=sa.text("type = 'CLEARING'"),
    )
    op.create_index(
        "uq_wallets_system_per_currency",
        "wallets",
        ["organization_id", "currency"],
        unique=True,
        postgresql_where=sa.text("type = 'SYSTEM'"),
    )
    op.create_table(
        "webhooks",
        sa.Column("id", sa.UUID(), server_default=sa.text("gen_random_uuid()"), nullable=False),
        sa.Column("organization_id", sa.UUID(), nullable=False),
        sa.Column("url", sa.String(length=2048), nullable=False),
        sa.Column("events", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column("secret", sa.String(length=128), nullable=False),
        sa.Column("is_active", sa.Boolean(), server_default=sa.text("true"), nullable=False),
        sa.Column("created_by", sa.UUID(), nullable=True),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.Column("deleted_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["created_by"], ["users.id"], name=op.f("fk_webhooks_created_by_users")
        ),
        sa.ForeignKeyConstraint(
            ["organization_id"],
            ["organizations.id"],
            name=op.f("fk_webhooks_organization_id_organizations"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_webhooks")),
    )
    op.create_index("ix_webhooks_organization_id", "webhooks", ["organization_id"], unique=False)
    op.create_table(
        "reconciliation_checkpoints",
        sa.Column("wallet_id", sa.UUID(), nullable=False),
        sa.Column("last_entry_id", sa.BigInteger(), nullable=False),
        sa.Column("balance", sa.BigInteger(), nullable=False),
        sa.Column(
            "checked_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.ForeignKeyConstraint(
            ["wallet_id"],
            ["wallets.id"],
            name=op.f("fk_reconciliation_checkpoints_wallet_id_wallets"),
        ),
        sa.PrimaryKeyConstraint("wallet_id", name=op.f("pk_reconciliation_checkpoints")),
    )
    op.create_table(
        "reconciliation_discrepancies",
        sa.Column("id", sa.BigInteger(), sa.Identity(always=False), nullable=False),
        sa.Column("run_id", sa.UUID(), nullable=False),
        sa.Column("organization_id", sa.UUID(), nullable=True),
        sa.Column("wallet_id", sa.UUID(), nullable=True),
        sa.Column("transaction_id", sa.UUID(), nullable=True),
        sa.Column("currency", sa.String(length=3), nullable=True),
        sa.Column("kind", sa.String(length=40), nullable=False),
        sa.Column("expected", sa.BigInteger(), nullable=True),
        sa.Column("actual", sa.BigInteger(), nullable=True),
        sa.ForeignKeyConstraint(
            ["run_id"],
            ["reconciliation_runs.id"],
            name=op.f("fk_reconciliation_discrepancies_run_id_reconciliation_runs"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_reconciliation_discrepancies")),
    )
    op.create_index(
        "ix_reconciliation_discrepancies_run_id",
        "reconciliation_discrepancies",
        ["run_id"],
        unique=False,
    )
    op.create_table(
        "risk_rules",
        sa.Column("id", sa.UUID(), server_default=sa.text("gen_random_uuid()"), nullable=False),
        sa.Column("organization_id", sa.UUID(), nullable=False),
        sa.Column("kind", sa.String(length=32), nullable=False),
        sa.Column("wallet_type", sa.String(length=10), nullable=True),
        sa.Column("currency", sa.String(length=3), nullable=True),
        sa.Column("wallet_id", sa.UUID(), nullable=True),
        sa.Column("max_amount", sa.BigInteger(), nullable=True),
        sa.Column("max_count", sa.Integer(), nullable=True),
        sa.Column("window_seconds", sa.Integer(), nullable=True),
        sa.Column("is_active", sa.Boolean(), server_default=sa.text("true"), nullable=False),
        sa.Column("created_by", sa.UUID(), nullable=True),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.Column(
            "updated_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.CheckConstraint(
            "kind IN ('MAX_AMOUNT', 'WINDOW_DEBITS', 'BLOCKED_WALLET')",
            name=op.f("ck_risk_rules_kind"),
        ),
        sa.ForeignKeyConstraint(
            ["created_by"], ["users.id"], name=op.f("fk_risk_rules_created_by_users")
        ),
        sa.ForeignKeyConstraint(
            ["organization_id"],
            ["organizations.id"],
            name=op.f("fk_risk_rules_organization_id_organizations"),
        ),
        sa.ForeignKeyConstraint(
            ["wallet_id"], ["wallets.id"], name=op.f("fk_risk_rules_wallet_id_wallets")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_risk_rules")),
    )
    op.create_index(
        "ix_risk_rules_organization_id", "risk_rules", ["organization_id"], unique=False
    )
    op.create_table(
        "transactions",
        sa.Column("id", sa.UUID(), server_default=sa.text("gen_random_uuid()"), nullable=False),
        sa.Column("seq", sa.BigInteger(), sa.Identity(always=False), nullable=False),
        sa.Column("organization_id", sa.UUID(), nullable=False),
        sa.Column("destination_organization_id", sa.UUID(), nullable=False),
        sa.Column("idempotency_key", sa.String(length=255), nullable=False),
        sa.Column("request_hash", sa.String(length=64), nullable=False),
        sa.Column("kind", sa.String(length=10), nullable=False),
        sa.Column("source_wallet_id", sa.UUID(), nullable=False),
        sa.Column("destination_wallet_id", sa.UUID(), nullable=False),
        sa.Column("source_clearing_wallet_id", sa.UUID(), nullable=True),
        sa.Column("destination_clearing_wallet_id", sa.UUID(), nullable=True),
        sa.Column("amount", sa.BigInteger(), nullable=False),
        sa.Column("currency", sa.String(length=3), nullable=False),
        sa.Column(
            "status", sa.String(length=10), server_default=sa.text("'PENDING'"), nullable=False
        ),
        sa.Column("failure_code", sa.String(length=50), nullable=True),
        sa.Column("failure_message", sa.Text(), nullable=True),
        sa.Column("description", sa.String(length=500), nullable=True),
        sa.Column(
            "metadata",
            postgresql.JSONB(astext_type=sa.Text()),
            server_default=sa.text("'{}'::jsonb"),
            nullable=False,
        ),
        sa.Column("reverses_transaction_id", sa.UUID(), nullable=True),
        sa.Column("atomic_group_id", sa.UUID(), nullable=True),
        sa.Column("atomic_group_size", sa.Integer(), nullable=True),
        sa.Column("created_by", sa.UUID(), nullable=True),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.Column("posted_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("cancelled_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("failed_at", sa.DateTime(timezone=True), nullable=True),
        sa.CheckConstraint(
            "(kind = 'CROSS_ORG') = (source_clearing_wallet_id IS NOT NULL AND destination_clearing_wallet_id IS NOT NULL)",
            name=op.f("ck_transactions_cross_org_clearing"),
        ),
        sa.CheckConstraint("kind IN ('TRANSFER', 'CROSS_ORG')", name=op.f("ck_transactions_kind")),
        sa.CheckConstraint(
            "status IN ('PENDING', 'COMPLETED', 'FAILED', 'CANCELLED')",
            name=op.f("ck_transactions_status"),
        ),
        sa.CheckConstraint("amount > 0", name=op.f("ck_transactions_positive_amount")),
        sa.CheckConstraint(
            "source_wallet_id <> destination_wallet_id",
            name=op.f("ck_transactions_distinct_wallets"),
        ),
        sa.ForeignKeyConstraint(
            ["created_by"], ["users.id"], name=op.f("fk_transactions_created_by_users")
        ),
        sa.ForeignKeyConstraint(
            ["destination_clearing_wallet_id"],
            ["wallets.id"],
            name=op.f("fk_transactions_destination_clearing_wallet_id_wallets"),
        ),
        sa.ForeignKeyConstraint(
            ["destination_organization_id"],
            ["organizations.id"],
            name=op.f("fk_transactions_destination_organization_id_organizations"),
        ),
        sa.ForeignKeyConstraint(
            ["destination_wallet_id"],
            ["wallets.id"],
            name=op.f("fk_transactions_destination_wallet_id_wallets"),
        ),
        sa.ForeignKeyConstraint(
            ["organization_id"],
            ["organizations.id"],
            name=op.f("fk_transactions_organization_id_organizations"),
        ),
        sa.ForeignKeyConstraint(
            ["reverses_transaction_id"],
            ["transactions.id"],
            name=op.f("fk_transactions_reverses_transaction_id_transactions"),
        ),
        sa.ForeignKeyConstraint(
            ["source_clearing_wallet_id"],
            ["wallets.id"],
            name=op.f("fk_transactions_source_clearing_wallet_id_wallets"),
        ),
        sa.ForeignKeyConstraint(
            ["source_wallet_id"],
            ["wallets.id"],
            name=op.f("fk_transactions_source_wallet_id_wallets"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_transactions")),
        sa.UniqueConstraint(
            "organization_id",
            "idempotency_key",
            name=op.f("uq_transactions_organization_id_idempotency_key"),
        ),
        sa.UniqueConstraint("seq", name=op.f("uq_transactions_seq")),
    )
    op.create_index(
        "ix_transactions_atomic_group_id", "transactions", ["atomic_group_id"], unique=False
    )
    op.create_index(
        "ix_transactions_destination_organization_id_created_at",
        "transactions",
        ["destination_organization_id", "created_at", "id"],
        unique=False,
        postgresql_where=sa.text("kind = 'CROSS_ORG'"),
    )
    op.create_index(
        "ix_transactions_destination_wallet_id_created_at",
        "transactions",
        ["destination_wallet_id", "created_at"],
        unique=False,
    )
    op.create_index(
        "ix_transactions_organization_id_created_at",
        "transactions",
        ["organization_id", "created_at", "id"],
        unique=False,
    )
    op.create_index(
        "ix_transactions_pending_seq",
        "transactions",
        ["seq"],
        unique=False,
        postgresql_where=sa.text("status = 'PENDING'"),
    )
    op.create_index(
        "ix_transactions_reverses_transaction_id",
        "transactions",
        ["reverses_transaction_id"],
        unique=False,
    )
    op.create_index(
        "ix_transactions_source_wallet_id_created_at",
        "transactions",
        ["source_wallet_id", "created_at"],
        unique=False,
    )
    op.create_table(
        "webhook_deliveries",
        sa.Column("id", sa.UUID(), server_default=sa.text("gen_random_uuid()"), nullable=False),
        sa.Column("webhook_id", sa.UUID(), nullable=False),
        sa.Column("event_id", sa.UUID(), nullable=False),
        sa.Column("organization_id", sa.UUID(), nullable=False),
        sa.Column(
            "status", sa.String(length=10), server_default=sa.text("'PENDING'"), nullable=False
        ),
        sa.Column("attempts", sa.Integer(), server_default=sa.text("0"), nullable=False),
        sa.Column("last_status_code", sa.Integer(), nullable=True),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("next_attempt_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.Column(
            "updated_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.CheckConstraint(
            "status IN ('PENDING', 'SUCCEEDED', 'FAILED')",
            name=op.f("ck_webhook_deliveries_status"),
        ),
        sa.ForeignKeyConstraint(
            ["event_id"], ["outbox.event_id"], name=op.f("fk_webhook_deliveries_event_id_outbox")
        ),
        sa.ForeignKeyConstraint(
            ["organization_id"],
            ["organizations.id"],
            name=op.f("fk_webhook_deliveries_organization_id_organizations"),
        ),
        sa.ForeignKeyConstraint(
            ["webhook_id"], ["webhooks.id"], name=op.f("fk_webhook_deliveries_webhook_id_webhooks")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_webhook_deliveries")),
    )
    op.create_index(
        "ix_webhook_deliveries_due",
        "webhook_deliveries",
        ["next_attempt_at"],
        unique=False,
        postgresql_where=sa.text("status = 'PENDING'"),
    )
    op.create_index(
        "ix_webhook_deliveries_event_id", "webhook_deliveries", ["event_id"], unique=False
    )
    op.create_index(
        "ix_webhook_deliveries_webhook_id_created_at",
        "webhook_deliveries",
        ["webhook_id", "created_at"],
        unique=False,
    )
    op.create_table(
        "ledger_entries",
        sa.Column("id", sa.BigInteger(), sa.Identity(always=False), nullable=False),
        sa.Column("transaction_id", sa.UUID(), nullable=True),
        sa.Column("settlement_id", sa.UUID(), nullable=True),
        sa.Column("wallet_id", sa.UUID(), nullable=False),
        sa.Column("organization_id", sa.UUID(), nullable=False),
        sa.Column("direction", sa.String(length=6), nullable=False),
        sa.Column("amount", sa.BigInteger(), nullable=False),
        sa.Column("currency", sa.String(length=3), nullable=False),
        sa.Column("balance_after", sa.BigInteger(), nullable=False),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.CheckConstraint(
            "direction IN ('DEBIT', 'CREDIT')", name=op.f("ck_ledger_entries_direction")
        ),
        sa.CheckConstraint(
            "(transaction_id IS NULL) <> (settlement_id IS NULL)",
            name=op.f("ck_ledger_entries_one_origin"),
        ),
        sa.CheckConstraint("amount > 0", name=op.f("ck_ledger_entries_positive_amount")),
        sa.ForeignKeyConstraint(
            ["organization_id"],
            ["organizations.id"],
            name=op.f("fk_ledger_entries_organization_id_organizations"),
        ),
        sa.ForeignKeyConstraint(
            ["settlement_id"],
            ["settlements.id"],
            name=op.f("fk_ledger_entries_settlement_id_settlements"),
        ),
        sa.ForeignKeyConstraint(
            ["transaction_id"],
            ["transactions.id"],
            name=op.f("fk_ledger_entries_transaction_id_transactions"),
        ),
        sa.ForeignKeyConstraint(
            ["wallet_id"], ["wallets.id"], name=op.f("fk_ledger_entries_wallet_id_wallets")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_ledger_entries")),
    )
    op.create_index(
        "ix_ledger_entries_settlement_id", "ledger_entries", ["settlement_id"], unique=False
    )
    op.create_index(
        "ix_ledger_entries_transaction_id", "ledger_entries", ["transaction_id"], unique=False
    )
    op.create_index(
        "ix_ledger_entries_wallet_id_id", "ledger_entries", ["wallet_id", "id"], unique=False
    )
    op.create_table(
        "settlement_items",
        sa.Column("transaction_id", sa.UUID(), nullable=False),
        sa.Column("settlement_id", sa.UUID(), nullable=False),
        sa.ForeignKeyConstraint(
            ["settlement_id"],
            ["settlements.id"],
            name=op.f("fk_settlement_items_settlement_id_settlements"),
        ),
        sa.ForeignKeyConstraint(
            ["transaction_id"],
            ["transactions.id"],
            name=op.f("fk_settlement_items_transaction_id_transactions"),
        ),
        sa.PrimaryKeyConstraint("transaction_id", name=op.f("pk_settlement_items")),
    )
    op.create_index(
        "ix_settlement_items_settlement_id", "settlement_items", ["settlement_id"], unique=False
    )
    op.create_table(
        "webhook_attempts",
        sa.Column("id", sa.BigInteger(), sa.Identity(always=False), nullable=False),
        sa.Column("delivery_id", sa.UUID(), nullable=False),
        sa.Column("attempt", sa.Integer(), nullable=False),
        sa.Column("status_code", sa.Integer(), nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("duration_ms", sa.Integer(), nullable=False),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.ForeignKeyConstraint(
            ["delivery_id"],
            ["webhook_deliveries.id"],
            name=op.f("fk_webhook_attempts_delivery_id_webhook_deliveries"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_webhook_attempts")),
    )
    op.create_index(
        "ix_webhook_attempts_delivery_id", "webhook_attempts", ["delivery_id"], unique=False
    )
    for statement in GUARDS:
        op.execute(statement)


def downgrade() -> None:
    op.execute("DROP TRIGGER IF EXISTS transactions_final_is_final ON transactions")
    op.execute("DROP TRIGGER IF EXISTS audit_logs_no_truncate ON audit_logs")
    op.execute("DROP TRIGGER IF EXISTS audit_logs_append_only ON audit_logs")
    op.execute("DROP TRIGGER IF EXISTS ledger_entries_append_only ON ledger_entries")
    op.execute("DROP FUNCTION IF EXISTS vaultcraft_final_is_final()")
    op.execute("DROP FUNCTION IF EXISTS vaultcraft_audit_seal_only()")
    op.execute("DROP FUNCTION IF EXISTS vaultcraft_refuse_change()")
    op.drop_index("ix_webhook_attempts_delivery_id", table_name="webhook_attempts")
    op.drop_table("webhook_attempts")
    op.drop_index("ix_settlement_items_settlement_id", table_name="settlement_items")
    op.drop_table("settlement_items")
    op.drop_index("ix_ledger_entries_wallet_id_id", table_name="ledger_entries")
    op.drop_index("ix_ledger_entries_transaction_id", table_name="ledger_entries")
    op.drop_index("ix_ledger_entries_settlement_id", table_name="ledger_entries")
    op.drop_table("ledger_entries")
    op.drop_index("ix_webhook_deliveries_webhook_id_created_at", table_name="webhook_deliveries")
    op.drop_index("ix_webhook_deliveries_event_id", table_name="webhook_deliveries")
    op.drop_index(
        "ix_webhook_deliveries_due",
        table_name="webhook_deliveries",
        postgresql_where=sa.text("status = 'PENDING'"),
    )
    op.drop_table("webhook_deliveries")
    op.drop_index("ix_transactions_source_wallet_id_created_at", table_name="transactions")
    op.drop_index("ix_transactions_reverses_transaction_id", table_name="transactions")
    op.drop_index(
        "ix_transactions_pending_seq",
        table_name="transactions",
        postgresql_where=sa.text("status = 'PENDING'"),
    )
    op.drop_index("ix_transactions_organization_id_created_at", table_name="transactions")
    op.drop_index("ix_transactions_destination_wallet_id_created_at", table_name="transactions")
    op.drop_index(
        "ix_transactions_destination_organization_id_created_at",
        table_name="transactions",
        postgresql_where=sa.text("kind = 'CROSS_ORG'"),
    )
    op.drop_index("ix_transactions_atomic_group_id", table_name="transactions")
    op.drop_table("transactions")
    op.drop_index("ix_risk_rules_organization_id", table_name="risk_rules")
    op.drop_table("risk_rules")
    op.drop_index(
        "ix_reconciliation_discrepancies_run_id", table_name="reconciliation_discrepancies"
    )
    op.drop_table("reconciliation_discrepancies")
    op.drop_table("reconciliation_checkpoints")
    op.drop_index("ix_webhooks_organization_id", table_name="webhooks")
    op.drop_table("webhooks")
    op.drop_index(
        "uq_wallets_system_per_currency",
        table_name="wallets",
        postgresql_where=sa.text("type = 'SYSTEM'"),
    )
    op.drop_index(
        "uq_wallets_clearing_per_peer",
        table_name="wallets",
        postgresql_where=sa.text("type = 'CLEARING'"),
    )
    op.drop_index("ix_wallets_user_id", table_name="wallets")
    op.drop_index("ix_wallets_organization_id_created_at", table_name="wallets")
    op.drop_table("wallets")
    op.drop_index("ix_reconciliation_runs_created_at", table_name="reconciliation_runs")
    op.drop_table("reconciliation_runs")
    op.drop_table("counterparties")
    op.drop_index("uq_users_email_lower", table_name="users")
    op.drop_index("ix_users_organization_id_created_at", table_name="users")
    op.drop_table("users")
    op.drop_index("ix_settlements_payer_organization_id_created_at", table_name="settlements")
    op.drop_index("ix_settlements_payee_organization_id_created_at", table_name="settlements")
    op.drop_table("settlements")
    op.drop_index(
        "ix_outbox_unrelayed", table_name="outbox", postgresql_where=sa.text("relayed_at IS NULL")
    )
    op.drop_index("ix_outbox_organization_id_id", table_name="outbox")
    op.drop_table("outbox")
    op.drop_index(
        "ix_audit_logs_unsealed", table_name="audit_logs", postgresql_where=sa.text("hash IS NULL")
    )
    op.drop_index("ix_audit_logs_organization_id_id", table_name="audit_logs")
    op.drop_table("audit_logs")
    op.drop_table("organizations")
