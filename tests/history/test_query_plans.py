"""Metadata filters and balances at an instant are served by their indexes, never by a scan
of an organization's history: checked with EXPLAIN over 100,000 generated transfers."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest
from sqlalchemy import Engine, text

from ledger_core.persistence.transfers.ledger_generator import GeneratedLedger, generate_ledger
from ledger_core.persistence.transfers.reads import TransferFilter, list_sql
from ledger_core.persistence.wallets.history import POSITION_AT, STATEMENT_PAGE
from ledger_core.persistence.wallets.store import WalletFilters, wallets_query

pytestmark = pytest.mark.slow


@pytest.fixture
def engine(large_engine: Engine) -> Engine:
    """This module reads the ledger it generated in a database of its own."""
    return large_engine


@pytest.fixture(scope="module")
def books(large_engine: Engine) -> Iterator[GeneratedLedger]:
    """100,000 transfers among 20,000 wallets of one organization; each transfer carries an order number, one in 100 a
    `kind` too, and wallets a desk."""
    with large_engine.begin() as conn:
        books = generate_ledger(conn, 200_000, wallets_per_org=20_000, seed=0.25)
        org = books.organization_ids[0]
        conn.execute(
            text("""
                UPDATE transactions SET metadata = jsonb_build_object('order', seq::text)
                    || CASE WHEN seq % 100 = 0 THEN '{"kind": "payout"}'::jsonb
                            ELSE '{}'::jsonb END
                WHERE organization_id = :org
            """),
            {"org": org},
        )
        conn.execute(
            text(
                "UPDATE wallets SET metadata = jsonb_build_object('desk', id::text)"
                " WHERE organization_id = :org"
            ),
            {"org": org},
        )
    with large_engine.connect() as conn:
        conn.execution_options(isolation_level="AUTOCOMMIT").execute(
            text("ANALYZE transactions, wallets, ledger_entries")
        )
    yield books


def _plan(engine: Engine, sql: str, params: dict[str, Any]) -> str:
    with engine.connect() as conn:
        rows = conn.execute(text(f"EXPLAIN (FORMAT JSON) {sql}"), params).scalar_one()
    return json.dumps(rows)


def _nodes(plan: str) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = []

    def walk(node: dict[str, Any]) -> None:
        found.append(node)
        for child in node.get("Plans", []):
            walk(child)

    walk(json.loads(plan)[0]["Plan"])
    return found


@pytest.mark.parametrize("metadata", [{"order": "4242"}, {"kind": "payout"}])
def test_metadata_filter_uses_the_gin_index(
    engine: Engine, books: GeneratedLedger, metadata: dict[str, str]
) -> None:
    f = TransferFilter(metadata=metadata)
    sql, params = list_sql(books.organization_ids[0], None, f, 51)
    nodes = _nodes(_plan(engine, sql, params))
    assert any(n.get("Index Name") == "ix_transactions_metadata" for n in nodes), nodes
    assert not any(
        n["Node Type"] == "Seq Scan" and n.get("Relation Name") == "transactions" for n in nodes
    )
    assert not any(
        n.get("Index Name") == "ix_transactions_organization_id_created_at" for n in nodes
    )


def test_wallet_metadata_filter_uses_the_gin_index(engine: Engine, books: GeneratedLedger) -> None:
    with engine.connect() as conn:
        desk = conn.execute(
            text("SELECT metadata->>'desk' FROM wallets WHERE organization_id = :org LIMIT 1"),
            {"org": books.organization_ids[0]},
        ).scalar_one()
    stmt = wallets_query(
        books.organization_ids[0],
        None,
        WalletFilters(metadata={"desk": desk}),
        after=None,
        limit=51,
    )
    compiled = stmt.compile(dialect=engine.dialect)
    params = {k: json.dumps(v) if isinstance(v, dict) else v for k, v in compiled.params.items()}
    with engine.connect() as conn:
        plan = conn.exec_driver_sql(f"EXPLAIN (FORMAT JSON) {compiled}", params).scalar_one()
    nodes = _nodes(json.dumps(plan))
    assert any(n.get("Index Name") == "ix_wallets_metadata" for n in nodes), nodes


def test_balance_and_held_at_are_one_index_lookup_each(
    engine: Engine, books: GeneratedLedger
) -> None:
    """Over 100,000 changes of `held` too (written by hand: generated books have no holds)."""
    with engine.begin() as conn:
        wallet_id = conn.execute(
            text(
                "SELECT wallet_id FROM ledger_entries WHERE organization_id = :org"
                " GROUP BY wallet_id ORDER BY count(*) DESC LIMIT 1"
            ),
            {"org": books.organization_ids[0]},
        ).scalar_one()
        conn.execute(
            text("""
                WITH w AS (
                    SELECT CAST(:wallet AS uuid) AS id, 0 AS k
                    UNION ALL
                    (SELECT id, row_number() OVER (ORDER BY id) AS k FROM wallets
                     WHERE organization_id = :org AND id <> :wallet ORDER BY id LIMIT 49)
                )
                INSERT INTO wallet_held_changes (wallet_id, held_after, created_at)
                SELECT w.id, g, now() - make_interval(secs => 100000 - g)
                FROM generate_series(1, 100000) g JOIN w ON w.k = g % 50
            """),
            {"org": books.organization_ids[0], "wallet": wallet_id},
        )
    with engine.connect() as conn:
        conn.execution_options(isolation_level="AUTOCOMMIT").execute(
            text("ANALYZE wallet_held_changes")
        )
    plan = _plan(engine, POSITION_AT.text, {"wallet_id": wallet_id, "at": datetime.now(UTC)})
    nodes = _nodes(plan)
    limits = [n for n in nodes if n["Node Type"] == "Limit"]
    assert len(limits) == 2, nodes
    scans = {n.get("Index Name") for n in nodes if "Scan" in n["Node Type"]}
    assert scans == {"ix_ledger_entries_wallet_history", "ix_wallet_held_changes_history"}, nodes


def test_a_statement_page_is_a_range_of_the_history_index(
    engine: Engine, books: GeneratedLedger
) -> None:
    with engine.connect() as conn:
        wallet_id, last = conn.execute(
            text(
                "SELECT wallet_id, max(created_at) FROM ledger_entries WHERE organization_id = :org"
                " GROUP BY wallet_id ORDER BY count(*) DESC LIMIT 1"
            ),
            {"org": books.organization_ids[0]},
        ).one()
    params = {"wallet_id": wallet_id, "start": last, "end": datetime.now(UTC),
              "after_at": last, "after_id": 0, "limit": 51}  # fmt: skip
    nodes = _nodes(_plan(engine, STATEMENT_PAGE.text, params))
    used = {n.get("Index Name") for n in nodes} - {None}
    assert used == {"ix_ledger_entries_wallet_history"}, nodes
