"""The indexed probe for PENDING transfers (and captures or voids) that waited too long without a posting worker.

Reads one row of each: the first PENDING transfer in submission order, through the partial
index `ix_transactions_pending_seq` (see `pipeline_health`), and the first waiting capture
or void, through `ix_hold_actions_pending_seq`, and compares their ages: cheap enough to
run every second whatever the backlog. The posting dispatcher runs it on its raw LISTEN
connection, the scheduler through SQLAlchemy; both share the SQL.
"""

from __future__ import annotations

from typing import Any

import psycopg
from sqlalchemy import Connection

from ledger_core.persistence.transfers.pipeline_health import OLDEST_PENDING_CREATED_SQL

OLDEST_ACTION_CREATED_SQL = """
    SELECT created_at FROM hold_actions WHERE status = 'PENDING' ORDER BY seq LIMIT 1
"""
"""When the first waiting capture or void was asked for (no row when none waits)."""

PENDING_WAITING = f"""
    SELECT coalesce(
        ({OLDEST_PENDING_CREATED_SQL}) < now() - make_interval(secs => %(after)s), false
    ) OR coalesce(
        ({OLDEST_ACTION_CREATED_SQL}) < now() - make_interval(secs => %(after)s), false
    )
"""
"""Captures and voids wait for the same workers: a stuck one kicks them too."""


def pending_waiting(conn: psycopg.Connection[Any], after_s: float) -> bool:
    """Whether a PENDING transfer is older than `after_s` seconds (a psycopg connection)."""
    row = conn.execute(PENDING_WAITING, {"after": after_s}).fetchone()
    return bool(row is not None and row[0])


def pending_waiting_sa(conn: Connection, after_s: float) -> bool:
    """The same probe on a SQLAlchemy connection."""
    return bool(conn.exec_driver_sql(PENDING_WAITING, {"after": after_s}).scalar())
