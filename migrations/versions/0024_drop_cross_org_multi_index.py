"""Settlement no longer reads the cross-organization multi-leg transactions by index

Since 0023 settlement finds what it nets from the entries after each clearing wallet's
last settlement, and reaches those transactions by their primary key. Nothing reads
`ix_transactions_cross_org_multi` any more, and every cross-organization multi-leg
transaction still wrote an entry into it at intake and again when it was posted.

Revision ID: 0024_drop_cross_org_multi_index
Revises: 0023_settlement_marks
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0024_drop_cross_org_multi_index"
down_revision: str | Sequence[str] | None = "0023_settlement_marks"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

CROSS_ORG_MULTI = (
    "kind = 'MULTI' AND postings @? CAST('$[*].destination_organization_id' AS jsonpath)"
)


def upgrade() -> None:
    with op.get_context().autocommit_block():
        op.execute("DROP INDEX CONCURRENTLY IF EXISTS ix_transactions_cross_org_multi")


def downgrade() -> None:
    with op.get_context().autocommit_block():
        op.execute("DROP INDEX CONCURRENTLY IF EXISTS ix_transactions_cross_org_multi")
        op.create_index(
            "ix_transactions_cross_org_multi",
            "transactions",
            ["status"],
            postgresql_where=sa.text(CROSS_ORG_MULTI),
            postgresql_concurrently=True,
        )
