"""How long the posting pipeline has kept a transfer waiting: a stall shows here first.

The age of the first PENDING transfer in submission order: one probe of the partial
index `ix_transactions_pending_seq` (the lowest `seq` among PENDING rows), however many
transfers wait. `seq` follows submission, and `created_at` is the submitting transaction's
start, so the first by `seq` is the oldest to within one intake transaction's duration
(milliseconds): close enough for an age measured in seconds, and `min(created_at)` would
read every waiting row.
"""

from __future__ import annotations

from sqlalchemy import text

OLDEST_PENDING_CREATED_SQL = """
    SELECT created_at FROM transactions WHERE status = 'PENDING' AND seq IS NOT NULL
    ORDER BY seq LIMIT 1
"""
"""When the first waiting transfer was submitted (no row when none waits). `seq IS NOT
NULL` is always true; the index's condition names it so that the posting claim cannot
use this index (migration 0022)."""

OLDEST_PENDING_AGE_SQL = f"""
    SELECT coalesce(greatest(0, extract(epoch FROM now() - ({OLDEST_PENDING_CREATED_SQL}))), 0)
"""
"""Seconds the oldest waiting transfer has waited, 0 when none waits (a scalar query)."""

OLDEST_PENDING_AGE = text(OLDEST_PENDING_AGE_SQL)
