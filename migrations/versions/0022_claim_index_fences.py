"""Only the organization index can serve the posting claim

The claim, the stall probe and a wallet's available balance each read PENDING transfers
through their own partial index. All three indexes had the same condition,
`status = 'PENDING'`, so the planner could serve the claim from any of them.

That choice went wrong when the statistics were taken while nothing waited (a quiet
hour, or a fresh ANALYZE). The planner then expected no PENDING row and saw the three
indexes as equally cheap. Under a surge it read the whole backlog through the source
wallet index and sorted it, for every batch: 560 ms a claim at 60,000 waiting transfers
instead of about 10.

Each of the other two indexes now carries one more condition that its own queries state
and the claim does not:
- `ix_transactions_pending_source_wallet_id`: `source_wallet_id IS NOT NULL`. A lookup by
  source wallet implies it.
- `ix_transactions_pending_seq`: `seq IS NOT NULL`. The oldest-pending probe states it.

The claim's only PENDING index is then `ix_transactions_pending_org_seq`, whatever the
statistics say.

Revision ID: 0022_claim_index_fences
Revises: 0021_trigger_conditions
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0022_claim_index_fences"
down_revision: str | Sequence[str] | None = "0021_trigger_conditions"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_INDEXES = (
    ("ix_transactions_pending_seq", "seq"),
    ("ix_transactions_pending_source_wallet_id", "source_wallet_id"),
)


def _recreate(fenced: bool) -> None:
    """Build each index anew beside the old one, then swap them, without blocking writes:
    a plain CREATE INDEX would hold off every transfer's intake while it reads the table.
    Safe to run again after an interruption at any step: an unfinished `_next` index is
    dropped and built again, and a missing old index is not an error."""
    with op.get_context().autocommit_block():
        for name, column in _INDEXES:
            condition = "status = 'PENDING'"
            if fenced:
                condition += f" AND {column} IS NOT NULL"
            op.execute(f"DROP INDEX CONCURRENTLY IF EXISTS {name}_next")
            op.create_index(
                f"{name}_next",
                "transactions",
                [column],
                postgresql_where=sa.text(condition),
                postgresql_concurrently=True,
            )
            op.execute(f"DROP INDEX CONCURRENTLY IF EXISTS {name}")
            op.execute(f"ALTER INDEX {name}_next RENAME TO {name}")


def upgrade() -> None:
    _recreate(fenced=True)


def downgrade() -> None:
    _recreate(fenced=False)
