"""Fair claiming across organizations

`ix_transactions_pending_org_seq` holds the PENDING transfers by organization and
submission order. The posting claim skip-scans it for the organizations that have work
waiting and reads a short range of it for each one's share of a batch, so a tenant with a
large backlog cannot fill every batch while another tenant's transfer waits.

Revision ID: 0006_isolation
Revises: 0008_roles
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0006_isolation"
down_revision: str | Sequence[str] | None = "0008_roles"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_index(
        "ix_transactions_pending_org_seq",
        "transactions",
        ["organization_id", "seq"],
        postgresql_where=sa.text("status = 'PENDING'"),
    )


def downgrade() -> None:
    op.drop_index("ix_transactions_pending_org_seq", table_name="transactions")
