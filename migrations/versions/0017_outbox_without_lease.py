"""The outbox keeps no lease: a relay holds the rows it publishes locked in one transaction

`outbox.claimed_until` was written for every event before the relay published it, so a
relay could publish without a row lock held. The relay now takes, publishes and finishes
a batch in one transaction (`FOR UPDATE SKIP LOCKED`), which writes each event once less;
PostgreSQL frees the rows of a relay that dies, and `idle_in_transaction_session_timeout`
those of one that hangs. The room 0013 kept free on the outbox's pages was for the lease's
heap-only updates; the `relayed_at` mark cannot be one (it is in the unrelayed index's
predicate), so the pages are packed full again.

Revision ID: 0017_outbox_without_lease
Revises: 0014_history_order
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0017_outbox_without_lease"
down_revision: str | Sequence[str] | None = "0014_history_order"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.drop_column("outbox", "claimed_until")
    op.execute("ALTER TABLE outbox RESET (fillfactor)")


def downgrade() -> None:
    op.execute("ALTER TABLE outbox SET (fillfactor = 50)")
    op.add_column("outbox", sa.Column("claimed_until", sa.DateTime(timezone=True), nullable=True))
