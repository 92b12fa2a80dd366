"""Where each clearing wallet was last settled

Settlement reads a pair's transfers from the newest settlement entry on each of its
clearing wallets onwards (see `ledger_core.persistence.settlement.settle`). This partial
index holds only settlement entries, by wallet and id, so finding that entry is one probe
however many transfers or settlements the wallet has seen.

Revision ID: 0023_settlement_marks
Revises: 0022_claim_index_fences
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0023_settlement_marks"
down_revision: str | Sequence[str] | None = "0022_claim_index_fences"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """Built without blocking writes: a plain CREATE INDEX would hold off posting while it
    read every entry. An interrupted build leaves an invalid index, dropped on the retry."""
    with op.get_context().autocommit_block():
        op.execute("DROP INDEX CONCURRENTLY IF EXISTS ix_ledger_entries_wallet_settlements")
        op.create_index(
            "ix_ledger_entries_wallet_settlements",
            "ledger_entries",
            ["wallet_id", "id"],
            postgresql_where=sa.text("settlement_id IS NOT NULL"),
            postgresql_concurrently=True,
        )


def downgrade() -> None:
    with op.get_context().autocommit_block():
        op.drop_index(
            "ix_ledger_entries_wallet_settlements",
            table_name="ledger_entries",
            postgresql_concurrently=True,
        )
