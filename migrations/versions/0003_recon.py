"""reconciliation discrepancies name the entry and settlement they point at

Revision ID: 0003_recon
Revises: 0002_gateway
Create Date: 2026-11-24 10:00:00.000000

A broken `balance_after` chain is reported at its first broken entry, and an unbalanced
settlement by its settlement id; both columns are nullable and carry no foreign key, since
a discrepancy may describe a row that was removed behind the ledger's back.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003_recon"
down_revision: str | Sequence[str] | None = "0002_gateway"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column(
        "reconciliation_discrepancies", sa.Column("entry_id", sa.BigInteger(), nullable=True)
    )
    op.add_column(
        "reconciliation_discrepancies", sa.Column("settlement_id", sa.UUID(), nullable=True)
    )


def downgrade() -> None:
    op.drop_column("reconciliation_discrepancies", "settlement_id")
    op.drop_column("reconciliation_discrepancies", "entry_id")
