"""The `scale` scenario's history: many stored transfers in the benchmark's organization.

`ledger_core.persistence.transfers.ledger_generator` builds ledgers in organizations of its own,
which suits `reconcile`; `scale` needs the history in the organization the load runs in,
among the very wallets it moves money between, so the list and posting queries it makes
see a big table. The rows are what posting would have written (completed transfers,
balanced entries with running balances, relayed events), so every invariant holds.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

import psycopg

from runtime.settings import to_psycopg_url

STORED_TRANSFERS_SQL = Path(__file__).resolve().parent / "stored_transfers.sql"
CHUNK = 100_000


def fill_stored_transfers(
    url: str,
    organization_id: str,
    count: int,
    on_progress: Callable[[int], None] | None = None,
) -> float:
    """Insert `count` completed transfers among the organization's wallets; returns seconds."""
    started = time.monotonic()
    sql = STORED_TRANSFERS_SQL.read_text()
    done = 0
    while done < count:
        chunk = min(CHUNK, count - done)
        with psycopg.connect(to_psycopg_url(url)) as conn:
            conn.execute("SELECT set_config('bench.org_id', %s, true)", (organization_id,))
            conn.execute("SELECT set_config('bench.count', %s, true)", (str(chunk),))
            conn.execute(sql)  # trusted file, many statements
        done += chunk
        if on_progress is not None:
            on_progress(chunk)
    with psycopg.connect(to_psycopg_url(url), autocommit=True) as conn:
        conn.execute("VACUUM ANALYZE wallets, transactions, ledger_entries, outbox")
    return time.monotonic() - started
