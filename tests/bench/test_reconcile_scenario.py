"""The reconcile scenario: a generated ledger, the product's full reconciliation, and the
invariant checker, all agreeing that the books are clean."""

from __future__ import annotations

from sqlalchemy import create_engine, text

from bench.scenarios import catch_up_reconciliation, reconcile
from bench.system import create_database, drop_database, migrate
from ledger_core.persistence.transfers.ledger_generator import generate_ledger
from runtime.settings import to_sqlalchemy_url


def test_full_reconciliation_of_a_generated_ledger_finds_nothing(database_url: str) -> None:
    out = reconcile(database_url, 4000, organizations=2, wallets_per_org=50)
    assert out["status"] == "COMPLETED"
    assert out["entries"] == 4000 and out["entries_checked"] == 4000
    assert out["wallets_checked"] == out["wallets"] == 2 * 51
    assert out["discrepancies"] == 0
    assert out["invariants"] == []
    assert out["seconds"] > 0


def test_the_catch_up_run_moves_every_checkpoint_past_a_stored_history(
    service_urls: tuple[str, str],
) -> None:
    """After a history is stored at once, one incremental run brings every wallet's
    checkpoint to its last entry, so the next scheduled run has nothing old to check."""
    url = create_database(service_urls[0], "vaultcraft_catch_up")
    engine = create_engine(to_sqlalchemy_url(url))
    try:
        migrate(url)
        with engine.begin() as conn:
            generate_ledger(conn, 2000, wallets_per_org=20, organizations=1, currency="INR")
        out = catch_up_reconciliation(url)
        assert out["status"] == "COMPLETED"
        with engine.connect() as conn:
            behind = conn.execute(
                text(
                    "SELECT count(*) FROM wallets w"
                    " LEFT JOIN reconciliation_checkpoints c ON c.wallet_id = w.id"
                    " WHERE EXISTS (SELECT 1 FROM ledger_entries e WHERE e.wallet_id = w.id"
                    "   AND e.id > coalesce(c.last_entry_id, 0))"
                )
            ).scalar_one()
        assert behind == 0
    finally:
        engine.dispose()
        drop_database(url)
