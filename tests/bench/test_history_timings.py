"""The benchmark times a balance-at-T read and a metadata-filtered list, and judges both."""

from __future__ import annotations

from sqlalchemy import create_engine, text

from bench.report import judge
from bench.scenarios import history_timings
from ledger_core.persistence.transfers.ledger_generator import generate_ledger
from tests.support.databases import fresh_database


def test_history_reads_are_timed_on_a_generated_ledger(service_urls: tuple[str, str]) -> None:
    """On a database of its own: the generated books have no outbox events, which the
    session database's double-posting checks would report."""
    with fresh_database(service_urls[0], "vaultcraft_history_bench") as url:
        engine = create_engine(url)
        try:
            with engine.begin() as conn:
                books = generate_ledger(conn, 2_000, wallets_per_org=20, seed=0.3)
                wallet_id = conn.execute(
                    text(
                        "SELECT wallet_id FROM ledger_entries WHERE organization_id = :org LIMIT 1"
                    ),
                    {"org": books.organization_ids[0]},
                ).scalar_one()
        finally:
            engine.dispose()
        timings = history_timings(url, str(books.organization_ids[0]), str(wallet_id))
    assert set(timings) == {"balance_at", "metadata_list"}
    assert all(0 < ms < 10_000 for ms in timings.values())


def test_history_targets_are_judged_against_10_ms() -> None:
    result = {
        "scenarios": {
            "scale": {
                "stored_transfers": 1_000_000,
                "history_ms": {"balance_at": 0.4, "metadata_list": 12.5},
            }
        }
    }
    targets = judge(result)["targets"]
    assert targets["balance_at_ms"]["met"] is True
    assert (
        targets["metadata_list_ms"]["met"] is False and targets["metadata_list_ms"]["value"] == 12.5
    )
