"""The ledger generator builds valid books of the requested size, quickly and in bulk."""

from __future__ import annotations

import pytest
from sqlalchemy import Engine, text

from ledger_core.persistence.reconciliation.invariants import check_invariants, describe
from ledger_core.persistence.transfers.ledger_generator import generate_ledger
from ledger_core.reconciliation import Mode
from ledger_core.services.reconciliation import reconcile
from tests.reconciliation.books import Books
from tests.reconciliation.ledgers import build_ledger


def count(db: Engine, table: str) -> int:
    with db.connect() as conn:
        return int(conn.execute(text(f"SELECT count(*) FROM {table}")).scalar_one())


@pytest.mark.parametrize(("entries", "wallets", "orgs"), [(4_001, 25, 3), (30, 40, 2)])
def test_generated_books_keep_every_promise(
    db: Engine, books: Books, entries: int, wallets: int, orgs: int
) -> None:
    # Given an existing hand-built ledger, and generated books added next to it
    build_ledger(books)
    before = count(db, "ledger_entries")
    with db.begin() as conn:
        generated = generate_ledger(
            conn, entries, wallets_per_org=wallets, organizations=orgs, seed=0.5
        )

    # Then the sizes are as asked (whole transfers), and the whole ledger is sound
    assert generated.entries == entries // 2 * 2
    assert count(db, "ledger_entries") == before + generated.entries
    assert len(generated.organization_ids) == orgs
    with db.connect() as conn:
        violations = check_invariants(conn)
    assert violations == [], describe(violations)
    outcome = reconcile(db, Mode.FULL, pending_after_s=30)
    assert outcome.findings is not None
    assert outcome.findings.discrepancies == ()
    assert outcome.findings.entries_checked == before + generated.entries


def test_generated_entries_are_in_posting_order(db: Engine) -> None:
    """Entry ids follow posting order: each wallet's chain walks up by id."""
    with db.begin() as conn:
        generate_ledger(conn, 2_000, wallets_per_org=10, seed=0.1)
    with db.connect() as conn:
        gaps = conn.execute(
            text("SELECT max(id) - min(id) + 1 = count(*) FROM ledger_entries")
        ).scalar_one()
        first = conn.execute(
            text("SELECT direction, amount, balance_after FROM ledger_entries ORDER BY id LIMIT 2")
        ).all()
    assert gaps
    assert [r.direction for r in first] == ["DEBIT", "CREDIT"]
    assert [r.balance_after for r in first] == [-first[0].amount, first[1].amount]


def test_it_refuses_a_ledger_it_cannot_build(db: Engine) -> None:
    with db.begin() as conn, pytest.raises(ValueError, match="two wallets"):
        generate_ledger(conn, 100, wallets_per_org=1)
