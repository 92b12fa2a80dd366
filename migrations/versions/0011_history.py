"""History and queries: balances at any instant, wallet metadata, transfer references

- `ix_ledger_entries_wallet_history` on `(wallet_id, created_at DESC, id DESC)`: the
  balance of a wallet at an instant is the `balance_after` of its last entry at or before
  it, one index lookup; statements read their range from the same index.
- `wallets.metadata` (JSONB, like `transactions.metadata`) and a GIN `jsonb_path_ops`
  index on both, which serves the `@>` containment of `?metadata[key]=value` filters.
- `transactions.reference`: optional, unique per organization when given.

Revision ID: 0011_history
Revises: 0010_holds
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB

revision: str = "0011_history"
down_revision: str | Sequence[str] | None = "0010_holds"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_index(
        "ix_ledger_entries_wallet_history",
        "ledger_entries",
        ["wallet_id", sa.text("created_at DESC"), sa.text("id DESC")],
    )
    op.add_column(
        "wallets",
        sa.Column("metadata", JSONB, nullable=False, server_default=sa.text("'{}'::jsonb")),
    )
    for table in ("wallets", "transactions"):
        op.create_index(
            f"ix_{table}_metadata",
            table,
            ["metadata"],
            postgresql_using="gin",
            postgresql_ops={"metadata": "jsonb_path_ops"},
        )
    op.add_column("transactions", sa.Column("reference", sa.String(128), nullable=True))
    op.create_index(
        "uq_transactions_reference",
        "transactions",
        ["organization_id", "reference"],
        unique=True,
        postgresql_where=sa.text("reference IS NOT NULL"),
    )


def downgrade() -> None:
    op.drop_index("uq_transactions_reference", table_name="transactions")
    op.drop_column("transactions", "reference")
    for table in ("wallets", "transactions"):
        op.drop_index(f"ix_{table}_metadata", table_name=table)
    op.drop_column("wallets", "metadata")
    op.drop_index("ix_ledger_entries_wallet_history", table_name="ledger_entries")
