"""`vaultcraft reconcile` and `vaultcraft verify` over a database of their own."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from sqlalchemy import Engine, text

from tests.reconciliation.books import Books
from tests.reconciliation.ledgers import build_ledger


def vaultcraft(
    command: str, *args: str, url: str, redis_url: str, tmp_path: Path
) -> subprocess.CompletedProcess[str]:
    env = {
        **os.environ,
        "DATABASE_URL": url,
        "REDIS_URL": redis_url,
        "VAULTCRAFT_DATA_DIR": str(tmp_path),
        "VAULTCRAFT_LOG_FORMAT": "json",
    }
    argv = [sys.executable, "-m", "vaultcraft.cli", command, *args]
    return subprocess.run(argv, capture_output=True, text=True, env=env, timeout=120)


def test_reconcile_prints_a_clean_run_then_drift_with_exit_1(
    books: Books, db: Engine, fresh_url: str, redis_url: str, tmp_path: Path
) -> None:
    # Given a clean ledger
    ledger = build_ledger(books)

    # When reconciled from the command line
    clean = vaultcraft("reconcile", "--full", url=fresh_url, redis_url=redis_url, tmp_path=tmp_path)

    # Then it says so, exits 0, and the run is recorded like any other
    assert clean.returncode == 0, clean.stdout + clean.stderr
    assert "(FULL): COMPLETED" in clean.stdout
    assert "Checked 7 wallets and 16 entries." in clean.stdout
    assert "The ledger is clean." in clean.stdout
    assert "Reconciling the ledger (full): done in" in clean.stderr
    with db.connect() as conn:
        runs = conn.execute(text("SELECT mode, status FROM reconciliation_runs")).all()
    assert [tuple(r) for r in runs] == [("FULL", "COMPLETED")]

    # Given a balance raised behind the ledger's back
    books.tamper("UPDATE wallets SET balance = balance + 7 WHERE id = :w", w=ledger.bob)

    # When reconciled incrementally
    drift = vaultcraft("reconcile", url=fresh_url, redis_url=redis_url, tmp_path=tmp_path)

    # Then each discrepancy is printed where it is, and the exit code is 1
    assert drift.returncode == 1, drift.stdout + drift.stderr
    assert "(INCREMENTAL): COMPLETED" in drift.stdout
    assert "Ledger drift: 3 discrepancies" in drift.stdout
    assert f"balance_mismatch: org={ledger.acme} wallet={ledger.bob} USD" in drift.stdout
    assert (
        "organization_sum_nonzero" in drift.stdout and "expected 0.00, actual 0.07" in drift.stdout
    )


def test_verify_shows_each_check_and_fails_on_a_broken_promise(
    books: Books, fresh_url: str, redis_url: str, tmp_path: Path
) -> None:
    ledger = build_ledger(books)

    clean = vaultcraft("verify", url=fresh_url, redis_url=redis_url, tmp_path=tmp_path)

    assert clean.returncode == 0, clean.stdout + clean.stderr
    assert "no violations" in clean.stdout
    steps = [line for line in clean.stderr.splitlines() if ": done in" in line]
    assert steps and steps[0].startswith("[1/") and "unbalanced_transaction" in steps[0]
    total = int(steps[0].split("/")[1].split("]")[0])
    assert len(steps) == total

    # A PENDING transfer only breaks the promise when finality is required.
    final = vaultcraft(
        "verify", "--require-final", url=fresh_url, redis_url=redis_url, tmp_path=tmp_path
    )
    assert final.returncode == 1 and "not_final" in final.stdout
    assert sum(": done in" in line for line in final.stderr.splitlines()) == total + 1

    books.tamper(
        "UPDATE ledger_entries SET amount = amount + 1 WHERE transaction_id = :t"
        " AND direction = 'CREDIT'",
        t=ledger.alice_to_bob,
    )
    broken = vaultcraft("verify", url=fresh_url, redis_url=redis_url, tmp_path=tmp_path)

    assert broken.returncode == 1
    assert f"promise 1 unbalanced_transaction: org={ledger.acme}" in broken.stdout
    assert f"transaction={ledger.alice_to_bob}" in broken.stdout
