"""hold actions: captures and voids as durable intents, decided by the posting workers

- `hold_actions`: one row per `POST /transactions/{id}/capture` or `/void`, stored PENDING
  with its `Idempotency-Key` (unique per organization) and request hash; a posting batch
  claims it (`ix_hold_actions_pending_seq`), locks the hold and its wallets in the posting
  order and ends it COMPLETED (the hold ended) or FAILED (`not_held` when a void, another
  capture or the expiry ended the hold first). `uq_hold_actions_completed` lets at most
  one action end a hold; a trigger keeps a decided action as it is.
- `ix_transactions_pending_multi_postings`, `ix_transactions_multi_postings`: GIN
  (`jsonb_path_ops`) over the legs of multi-leg transactions, so every leg counts in its
  source's `available_balance` while PENDING and a wallet's transfer list finds a
  transaction by any of its legs.

Revision ID: 0014_hold_actions
Revises: 0013_outbox_room
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0014_hold_actions"
down_revision: str | Sequence[str] | None = "0013_outbox_room"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

DECIDED_IS_FINAL = """
    CREATE FUNCTION vaultcraft_hold_action_final() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
        IF TG_OP = 'DELETE' THEN
            RAISE EXCEPTION 'hold actions are never deleted' USING ERRCODE = 'insufficient_privilege';
        END IF;
        IF OLD.status <> 'PENDING' THEN
            RAISE EXCEPTION 'hold action % is % and final', OLD.id, OLD.status
                USING ERRCODE = 'insufficient_privilege';
        END IF;
        RETURN NEW;
    END $$
"""


def upgrade() -> None:
    op.create_table(
        "hold_actions",
        sa.Column("id", sa.UUID(), server_default=sa.text("gen_random_uuid()"), nullable=False),
        sa.Column("seq", sa.BigInteger(), sa.Identity(always=False), nullable=False),
        sa.Column("organization_id", sa.UUID(), nullable=False),
        sa.Column("transaction_id", sa.UUID(), nullable=False),
        sa.Column("action", sa.String(10), nullable=False),
        sa.Column("amount", sa.BigInteger(), nullable=True),
        sa.Column("idempotency_key", sa.String(255), nullable=False),
        sa.Column("request_hash", sa.String(64), nullable=False),
        sa.Column("status", sa.String(10), server_default=sa.text("'PENDING'"), nullable=False),
        sa.Column("failure_code", sa.String(50), nullable=True),
        sa.Column("failure_message", sa.Text(), nullable=True),
        sa.Column("created_by", sa.UUID(), nullable=True),
        sa.Column(
            "created_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False
        ),
        sa.Column("decided_at", sa.DateTime(timezone=True), nullable=True),
        sa.CheckConstraint("action IN ('CAPTURE', 'VOID')", name=op.f("ck_hold_actions_action")),
        sa.CheckConstraint(
            "status IN ('PENDING', 'COMPLETED', 'FAILED')", name=op.f("ck_hold_actions_status")
        ),
        sa.CheckConstraint(
            "amount IS NULL OR (action = 'CAPTURE' AND amount > 0)",
            name=op.f("ck_hold_actions_amount"),
        ),
        sa.CheckConstraint(
            "(status = 'PENDING') = (decided_at IS NULL)", name=op.f("ck_hold_actions_decided")
        ),
        sa.ForeignKeyConstraint(
            ["organization_id"],
            ["organizations.id"],
            name=op.f("fk_hold_actions_organization_id_organizations"),
        ),
        sa.ForeignKeyConstraint(
            ["transaction_id"],
            ["transactions.id"],
            name=op.f("fk_hold_actions_transaction_id_transactions"),
        ),
        sa.ForeignKeyConstraint(
            ["created_by"], ["users.id"], name=op.f("fk_hold_actions_created_by_users")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_hold_actions")),
        sa.UniqueConstraint(
            "organization_id",
            "idempotency_key",
            name=op.f("uq_hold_actions_organization_id_idempotency_key"),
        ),
    )
    op.create_index(
        "ix_hold_actions_pending_seq",
        "hold_actions",
        ["seq"],
        postgresql_where=sa.text("status = 'PENDING'"),
    )
    op.create_index("ix_hold_actions_transaction_id", "hold_actions", ["transaction_id"])
    op.create_index(
        "uq_hold_actions_completed",
        "hold_actions",
        ["transaction_id"],
        unique=True,
        postgresql_where=sa.text("status = 'COMPLETED'"),
    )
    op.execute(DECIDED_IS_FINAL)
    op.execute(
        "CREATE TRIGGER hold_actions_decided_is_final BEFORE UPDATE OR DELETE ON hold_actions"
        " FOR EACH ROW EXECUTE FUNCTION vaultcraft_hold_action_final()"
    )
    op.create_index(
        "ix_transactions_pending_multi_postings",
        "transactions",
        ["postings"],
        postgresql_using="gin",
        postgresql_ops={"postings": "jsonb_path_ops"},
        postgresql_where=sa.text("status = 'PENDING' AND kind = 'MULTI'"),
    )
    op.create_index(
        "ix_transactions_multi_postings",
        "transactions",
        ["postings"],
        postgresql_using="gin",
        postgresql_ops={"postings": "jsonb_path_ops"},
        postgresql_where=sa.text("kind = 'MULTI'"),
    )


def downgrade() -> None:
    op.drop_index("ix_transactions_multi_postings", table_name="transactions")
    op.drop_index("ix_transactions_pending_multi_postings", table_name="transactions")
    op.execute("DROP TRIGGER IF EXISTS hold_actions_decided_is_final ON hold_actions")
    op.execute("DROP FUNCTION IF EXISTS vaultcraft_hold_action_final()")
    op.drop_index("uq_hold_actions_completed", table_name="hold_actions")
    op.drop_index("ix_hold_actions_transaction_id", table_name="hold_actions")
    op.drop_index("ix_hold_actions_pending_seq", table_name="hold_actions")
    op.drop_table("hold_actions")
