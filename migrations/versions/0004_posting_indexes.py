"""Leaner indexes on the posting hot path

Every posting updates its transaction row and inserts its entries, so each index on those
tables is paid for on every transfer. Indexes of columns that are mostly NULL
(reversals, atomic batches, settlement entries) become partial, and `seq` loses its
unique index: it is an identity column, unique by construction, and only ever read
through the index of PENDING transfers.

Revision ID: 0004_posting_indexes
Revises: 0003_recon
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004_posting_indexes"
down_revision: str | Sequence[str] | None = "0003_recon"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

PARTIAL = [
    ("ix_transactions_reverses_transaction_id", "transactions", "reverses_transaction_id"),
    ("ix_transactions_atomic_group_id", "transactions", "atomic_group_id"),
    ("ix_ledger_entries_settlement_id", "ledger_entries", "settlement_id"),
]


def upgrade() -> None:
    op.drop_constraint("uq_transactions_seq", "transactions", type_="unique")
    for name, table, column in PARTIAL:
        op.drop_index(name, table_name=table)
        op.create_index(name, table, [column], postgresql_where=sa.text(f"{column} IS NOT NULL"))


def downgrade() -> None:
    for name, table, column in PARTIAL:
        op.drop_index(name, table_name=table)
        op.create_index(name, table, [column])
    op.create_unique_constraint("uq_transactions_seq", "transactions", ["seq"])
