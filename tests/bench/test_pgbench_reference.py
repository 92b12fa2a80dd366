"""The pgbench references run against the real schema and leave the ledger balanced."""

from __future__ import annotations

from collections.abc import Iterator

import psycopg
import pytest

from bench import pgbench_reference as ref
from bench.ledger_fill import fill_stored_transfers
from bench.system import create_database, drop_database, invariant_violations, migrate
from runtime.settings import to_psycopg_url


@pytest.fixture(scope="module")
def reference_db(database_url: str) -> Iterator[str]:
    """A database of its own, so the reference organization stays out of other tests."""
    url = create_database(database_url, "vaultcraft_test_bench")
    try:
        migrate(url)
        ref.setup_reference_data(url, 1000)
        yield url
    finally:
        drop_database(url)


def test_per_commit_reference_posts_and_balances(reference_db: str) -> None:
    """One transfer per commit: a positive rate, and invariants 1-5 hold afterwards."""
    run = ref.run_pgbench(reference_db, ref.PER_COMMIT_SCRIPT, 4, 2, {"lo": 1, "hi": 1000})
    assert run.tps > 0 and run.transactions > 0 and run.failed == 0
    assert invariant_violations(reference_db) == []


def test_hot_reference_posts_and_balances(reference_db: str) -> None:
    """Ten hot wallets under four clients: no deadlock, a positive rate, a balanced ledger."""
    run = ref.run_pgbench(
        reference_db, ref.PER_COMMIT_SCRIPT, 4, 2, {"lo": 1, "hi": ref.HOT_WALLETS}
    )
    assert run.tps > 0 and run.failed == 0
    assert invariant_violations(reference_db) == []


def test_batched_reference_posts_a_thousand_per_commit(reference_db: str) -> None:
    """Set-based batches of 1,000 transfers: every batch writes 1,000 transactions."""
    with psycopg.connect(to_psycopg_url(reference_db)) as conn:
        (before,) = conn.execute("SELECT count(*) FROM transactions").fetchone() or (0,)
    run = ref.run_pgbench(reference_db, ref.BATCHED_SCRIPT, 2, 2, {"lo": 1, "hi": 1000})
    with psycopg.connect(to_psycopg_url(reference_db)) as conn:
        (after,) = conn.execute("SELECT count(*) FROM transactions").fetchone() or (0,)
    assert run.tps > 0 and run.failed == 0
    assert after - before == run.transactions * ref.BATCH_SIZE
    assert invariant_violations(reference_db) == []


def test_stored_transfer_fill_keeps_the_ledger_balanced(reference_db: str) -> None:
    """The scale scenario's set-based history is as balanced as posted transfers."""
    with psycopg.connect(to_psycopg_url(reference_db)) as conn:
        (org,) = conn.execute("SELECT bench_ref.org_id()::text").fetchone() or ("",)
    fill_stored_transfers(reference_db, str(org), 2000)
    assert invariant_violations(reference_db) == []


def test_invariant_check_reports_a_drifted_balance(reference_db: str) -> None:
    """A balance changed behind the ledger's back is caught (invariants 2 and 3)."""
    with psycopg.connect(to_psycopg_url(reference_db)) as conn:
        conn.execute("UPDATE wallets SET balance = balance + 1 WHERE id = bench_ref.wid(7)")
    found = invariant_violations(reference_db)
    with psycopg.connect(to_psycopg_url(reference_db)) as conn:
        conn.execute("UPDATE wallets SET balance = balance - 1 WHERE id = bench_ref.wid(7)")
    kinds = {line.split(":", 1)[0] for line in found}
    assert {
        "promise 2 balance_mismatch",
        "promise 3 organization_sum_nonzero",
        "promise 3 ledger_sum_nonzero",
    } <= kinds


def test_parse_pgbench_output_reads_the_summary() -> None:
    """The rate is the one without connection time; failures are counted when printed."""
    out = (
        "number of transactions actually processed: 3483\n"
        "number of failed transactions: 2 (0.057%)\n"
        "tps = 1743.653412 (without initial connection time)\n"
    )
    run = ref.parse_pgbench_output(out, 16, 2)
    assert (run.tps, run.transactions, run.failed, run.clients) == (1743.653412, 3483, 2, 16)
