"""index PENDING transfers by source wallet

A wallet's available balance subtracts its PENDING outgoing transfers. This partial
index keeps that sum proportional to the pending transfers, not to the wallet's history.

Revision ID: 0002_gateway
Revises: 0001
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002_gateway"
down_revision: str | Sequence[str] | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_index(
        "ix_transactions_pending_source_wallet_id",
        "transactions",
        ["source_wallet_id"],
        unique=False,
        postgresql_where=sa.text("status = 'PENDING'"),
    )


def downgrade() -> None:
    op.drop_index(
        "ix_transactions_pending_source_wallet_id",
        table_name="transactions",
        postgresql_where=sa.text("status = 'PENDING'"),
    )
