"""The indexed probe for PENDING transfers (and captures or voids) that waited too long without a posting worker.

Reads only PENDING rows, through the partial index `ix_transactions_pending_seq`, and stops
at the first one old enough: cheap enough to run every second. The posting dispatcher runs
it on its raw LISTEN connection, the scheduler through SQLAlchemy; both share the SQL.
"""

from __future__ import annotations

from typing import Any

import psycopg
from sqlalchemy import Connection

PENDING_WAITING = """
    SELECT EXISTS (
        SELECT 1 FROM transactions
        WHERE status = 'PENDING' AND created_at < now() - make_interval(secs => %(after)s)
    ) OR EXISTS (
        SELECT 1 FROM hold_actions
        WHERE status = 'PENDING' AND created_at < now() - make_interval(secs => %(after)s)
    )
"""
"""Captures and voids wait for the same workers: a stuck one kicks them too (through
`ix_hold_actions_pending_seq`, which holds only the waiting ones)."""


def pending_waiting(conn: psycopg.Connection[Any], after_s: float) -> bool:
    """Whether a PENDING transfer is older than `after_s` seconds (a psycopg connection)."""
    row = conn.execute(PENDING_WAITING, {"after": after_s}).fetchone()
    return bool(row is not None and row[0])


def pending_waiting_sa(conn: Connection, after_s: float) -> bool:
    """The same probe on a SQLAlchemy connection."""
    return bool(conn.exec_driver_sql(PENDING_WAITING, {"after": after_s}).scalar())
