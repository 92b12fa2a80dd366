"""The indexed probe for PENDING transfers that waited too long without a posting worker.

Reads one row: the first PENDING transfer in submission order, through the partial index
`ix_transactions_pending_seq` (see `pipeline_health`), and compares its age: cheap enough
to run every second whatever the backlog. The posting dispatcher runs
it on its raw LISTEN connection, the scheduler through SQLAlchemy; both share the SQL.
"""

from __future__ import annotations

from typing import Any

import psycopg
from sqlalchemy import Connection

from ledger_core.persistence.transfers.pipeline_health import OLDEST_PENDING_CREATED_SQL

PENDING_WAITING = f"""
    SELECT coalesce(
        ({OLDEST_PENDING_CREATED_SQL}) < now() - make_interval(secs => %(after)s), false
    )
"""


def pending_waiting(conn: psycopg.Connection[Any], after_s: float) -> bool:
    """Whether a PENDING transfer is older than `after_s` seconds (a psycopg connection)."""
    row = conn.execute(PENDING_WAITING, {"after": after_s}).fetchone()
    return bool(row is not None and row[0])


def pending_waiting_sa(conn: Connection, after_s: float) -> bool:
    """The same probe on a SQLAlchemy connection."""
    return bool(conn.exec_driver_sql(PENDING_WAITING, {"after": after_s}).scalar())
