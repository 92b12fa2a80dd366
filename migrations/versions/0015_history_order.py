"""History in lock order: entry instants taken under the wallet locks, and held over time

- `ledger_entries.created_at` defaults to `statement_timestamp()`, the moment the writing
  statement reached the server, rather than `now()`, the start of its transaction. Every
  writer of entries (posting, hold endings, settlement) sends that statement after it has
  locked the wallets, so a wallet's entries are in the same order by `(created_at, id)`
  as by `id` (the order of their running balances), and one statement's entries share
  one instant.
- `wallet_held_changes`: each change of a wallet's `held` (a hold placed, captured,
  voided or expired), with the wallet's `held` after it, recorded by the trigger
  `wallets_held_history` at the same `statement_timestamp()`. The held amount at an
  instant is the newest change at or before it, one lookup of
  `ix_wallet_held_changes_history`. Append-only, like the entries. Holds that existed
  before this migration are back-filled from their transfers, placed at the transfer's
  `created_at` and ended at its `posted_at` or `cancelled_at`.

Revision ID: 0014_history_order
Revises: 0014_hold_actions
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0014_history_order"
down_revision: str | Sequence[str] | None = "0014_hold_actions"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

ROLE = "vaultcraft_service"

RECORD_HELD = [
    """
    CREATE FUNCTION vaultcraft_record_held() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
        INSERT INTO wallet_held_changes (wallet_id, held_after) VALUES (NEW.id, NEW.held);
        RETURN NULL;
    END $$
    """,
    """
    CREATE TRIGGER wallets_held_history AFTER UPDATE OF held ON wallets
    FOR EACH ROW WHEN (OLD.held IS DISTINCT FROM NEW.held)
    EXECUTE FUNCTION vaultcraft_record_held()
    """,
    """
    CREATE TRIGGER wallet_held_changes_append_only BEFORE UPDATE OR DELETE OR TRUNCATE
    ON wallet_held_changes FOR EACH STATEMENT EXECUTE FUNCTION vaultcraft_refuse_change()
    """,
    f"REVOKE UPDATE, DELETE ON wallet_held_changes FROM {ROLE}",
]

BACKFILL = """
    INSERT INTO wallet_held_changes (wallet_id, held_after, created_at)
    SELECT wallet_id, sum(delta) OVER (PARTITION BY wallet_id ORDER BY at, delta DESC), at
    FROM (
        SELECT source_wallet_id AS wallet_id, created_at AS at, hold_amount AS delta
        FROM transactions
        WHERE hold_amount IS NOT NULL AND status IN ('HELD', 'COMPLETED', 'VOIDED', 'EXPIRED')
        UNION ALL
        SELECT source_wallet_id, coalesce(posted_at, cancelled_at), -hold_amount
        FROM transactions
        WHERE hold_amount IS NOT NULL AND status IN ('COMPLETED', 'VOIDED', 'EXPIRED')
    ) AS d
    ORDER BY wallet_id, at, delta DESC
"""
"""Each hold placed (at its intake) and ended, as running sums per wallet: an approximation
of a past the database did not record, whose newest sum is the wallet's `held` today."""


def upgrade() -> None:
    op.alter_column("ledger_entries", "created_at", server_default=sa.text("statement_timestamp()"))
    op.create_table(
        "wallet_held_changes",
        sa.Column("id", sa.BigInteger(), sa.Identity(always=False), nullable=False),
        sa.Column("wallet_id", sa.UUID(), nullable=False),
        sa.Column("held_after", sa.BigInteger(), nullable=False),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("statement_timestamp()"),
            nullable=False,
        ),
        sa.CheckConstraint("held_after >= 0", name=op.f("ck_wallet_held_changes_not_negative")),
        sa.ForeignKeyConstraint(
            ["wallet_id"],
            ["wallets.id"],
            name=op.f("fk_wallet_held_changes_wallet_id_wallets"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_wallet_held_changes")),
    )
    op.create_index(
        "ix_wallet_held_changes_history",
        "wallet_held_changes",
        ["wallet_id", sa.text("created_at DESC"), sa.text("id DESC")],
    )
    op.execute(BACKFILL)
    for statement in RECORD_HELD:
        op.execute(statement)


def downgrade() -> None:
    op.execute("DROP TRIGGER IF EXISTS wallets_held_history ON wallets")
    op.execute("DROP FUNCTION IF EXISTS vaultcraft_record_held()")
    op.drop_index("ix_wallet_held_changes_history", table_name="wallet_held_changes")
    op.drop_table("wallet_held_changes")
    op.alter_column("ledger_entries", "created_at", server_default=sa.text("now()"))
