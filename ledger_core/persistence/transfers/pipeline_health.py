"""How long the posting pipeline has kept a transfer waiting: a stall shows here first.

The oldest `created_at` among PENDING transfers, read through the partial index of
PENDING rows: it visits only waiting transfers (none on a healthy system, a few hundred
under load), so it costs little unless a backlog has already built up.
"""

from __future__ import annotations

from sqlalchemy import text

OLDEST_PENDING_AGE_SQL = """
    SELECT coalesce(greatest(0, extract(epoch FROM now() - min(created_at))), 0)
    FROM transactions WHERE status = 'PENDING'
"""
"""Seconds the oldest waiting transfer has waited, 0 when none waits (a scalar query)."""

OLDEST_PENDING_AGE = text(OLDEST_PENDING_AGE_SQL)
