"""The reconcile scenario: a generated ledger, the product's full reconciliation, and the
invariant checker, all agreeing that the books are clean."""

from __future__ import annotations

from bench.scenarios import reconcile


def test_full_reconciliation_of_a_generated_ledger_finds_nothing(database_url: str) -> None:
    out = reconcile(database_url, 4000, organizations=2, wallets_per_org=50)
    assert out["status"] == "COMPLETED"
    assert out["entries"] == 4000 and out["entries_checked"] == 4000
    assert out["wallets_checked"] == out["wallets"] == 2 * 51
    assert out["discrepancies"] == 0
    assert out["invariants"] == []
    assert out["seconds"] > 0
