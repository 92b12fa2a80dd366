"""Room on the outbox's pages for the relay's lease, so claiming an event writes no index entry

The relay leases each event (`claimed_until`) before it publishes it. `claimed_until` is in
no index, so that update can be HOT (heap-only: a new row version on the same page, no
index entries) when the page has room; the outbox is append-only and its pages were packed
full, so almost every lease wrote a new entry in each of the outbox's four indexes. With a
fill factor of 50, new pages keep half their room free for those versions.

Revision ID: 0013_outbox_room
Revises: 0011_history
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

revision: str = "0013_outbox_room"
down_revision: str | Sequence[str] | None = "0011_history"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.execute("ALTER TABLE outbox SET (fillfactor = 50)")


def downgrade() -> None:
    op.execute("ALTER TABLE outbox RESET (fillfactor)")
