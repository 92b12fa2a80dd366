"""Large ledgers made quickly with set-based SQL, for the `scale` and `reconcile` scenarios.

The rows are what posting would have written (completed transfers, balanced entries with
running balances, relayed events), so every invariant still holds afterwards.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

import psycopg

from bench.pgbench_reference import libpq_url, setup_reference_data

STORED_TRANSFERS_SQL = Path(__file__).resolve().parent / "stored_transfers.sql"
CHUNK = 100_000
RECONCILE_WALLETS = 10_000


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
        with psycopg.connect(libpq_url(url)) as conn:
            conn.execute("SELECT set_config('bench.org_id', %s, true)", (organization_id,))
            conn.execute("SELECT set_config('bench.count', %s, true)", (str(chunk),))
            conn.execute(sql)  # trusted file, many statements
        done += chunk
        if on_progress is not None:
            on_progress(chunk)
    with psycopg.connect(libpq_url(url), autocommit=True) as conn:
        conn.execute("VACUUM ANALYZE wallets, transactions, ledger_entries, outbox")
    return time.monotonic() - started


def generate_reconcile_ledger(url: str, entries: int) -> int:
    """Build a ledger of about `entries` entries in an empty database; returns the count."""
    wallets = min(RECONCILE_WALLETS, max(entries // 20, 10))
    setup_reference_data(url, wallets)
    with psycopg.connect(libpq_url(url)) as conn:
        (org_id,) = conn.execute("SELECT bench_ref.org_id()::text").fetchone() or ("",)
        (have,) = conn.execute("SELECT count(*) FROM ledger_entries").fetchone() or (0,)
    remaining = max(entries - int(have), 0) // 2
    if remaining:
        fill_stored_transfers(url, str(org_id), remaining)
    with psycopg.connect(libpq_url(url)) as conn:
        (total,) = conn.execute("SELECT count(*) FROM ledger_entries").fetchone() or (0,)
    return int(total)
