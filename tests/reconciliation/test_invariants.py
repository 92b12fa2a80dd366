"""The invariant checker finds each kind of violation of promises 1-5, and only those."""

from __future__ import annotations

import pytest
from sqlalchemy import Engine, text
from sqlalchemy.exc import IntegrityError

from ledger_core.persistence.reconciliation.invariants import Violation, check_invariants, describe
from tests.reconciliation.books import Books
from tests.reconciliation.ledgers import Ledger, build_ledger


@pytest.fixture
def ledger(books: Books) -> Ledger:
    return build_ledger(books)


def check(db: Engine, require_final: bool = False) -> list[Violation]:
    with db.connect() as conn:
        return check_invariants(conn, require_final=require_final)


def one(violations: list[Violation], kind: str) -> Violation:
    found = [v for v in violations if v.kind == kind]
    assert len(found) == 1, describe(violations)
    return found[0]


def test_a_clean_ledger_keeps_every_promise(db: Engine, ledger: Ledger) -> None:
    assert check(db) == []


def test_pending_transfers_break_promise_5_only_once_everything_should_be_final(
    db: Engine, ledger: Ledger
) -> None:
    pending = one(check(db, require_final=True), "not_final")

    assert (pending.promise, pending.organization_id) == (5, ledger.acme)


def test_it_runs_in_the_callers_transaction_too(db: Engine, ledger: Ledger) -> None:
    with db.begin() as conn:
        conn.execute(
            text("UPDATE wallets SET balance = balance + 1 WHERE id = :w"), {"w": ledger.bob}
        )
        assert one(check_invariants(conn), "balance_mismatch").wallet_id == ledger.bob
        conn.rollback()


def test_unbalanced_transaction(db: Engine, books: Books, ledger: Ledger) -> None:
    with db.begin() as conn:
        tx = books.transaction(conn, ledger.alice, ledger.bob, 100)
        books.post_legs(conn, [(ledger.alice, "DEBIT", 100), (ledger.bob, "CREDIT", 90)], tx)

    found = check(db)

    v = one(found, "unbalanced_transaction")
    assert (v.promise, v.transaction_id, v.expected, v.actual) == (1, tx, 100, 90)
    assert {x.kind for x in found} == {
        "unbalanced_transaction",
        "organization_sum_nonzero",
        "ledger_sum_nonzero",
    }


def test_unbalanced_settlement(db: Engine, books: Books, ledger: Ledger) -> None:
    legs = [(ledger.acme_clearing, "DEBIT", 10), (ledger.acme_system, "CREDIT", 9)]
    books.settlement(ledger.acme, ledger.globex, legs)

    v = one(check(db), "unbalanced_settlement")

    assert (v.organization_id, v.expected, v.actual) == (ledger.acme, 10, 9)


def test_posted_without_entries(db: Engine, books: Books, ledger: Ledger) -> None:
    with db.begin() as conn:
        tx = books.transaction(conn, ledger.alice, ledger.bob, 321)
    books.tamper(
        "DELETE FROM ledger_entries WHERE transaction_id = :tx AND organization_id = :org",
        tx=ledger.cross,
        org=ledger.globex,
    )

    found = [v for v in check(db) if v.kind == "posted_without_entries"]

    assert {(v.transaction_id, v.organization_id) for v in found} == {
        (tx, ledger.acme),
        (ledger.cross, ledger.globex),
    }


def test_entries_without_posting(db: Engine, books: Books, ledger: Ledger) -> None:
    with db.begin() as conn:
        tx = books.transaction(conn, ledger.alice, ledger.bob, 50, status="CANCELLED")
        books.post_legs(conn, [(ledger.alice, "DEBIT", 50), (ledger.bob, "CREDIT", 50)], tx)

    v = one(check(db), "entries_without_posting")

    assert (v.transaction_id, v.actual) == (tx, 2)


def test_entry_in_another_currency_than_its_wallet(
    db: Engine, books: Books, ledger: Ledger
) -> None:
    entry_id = books.entries_of(ledger.bob)[0][0]
    books.tamper("UPDATE ledger_entries SET currency = 'EUR' WHERE id = :id", id=entry_id)

    v = one(check(db), "entry_wallet_mismatch")

    assert (v.entry_id, v.wallet_id, v.organization_id) == (entry_id, ledger.bob, ledger.acme)


def test_the_database_refuses_an_entry_in_another_organizations_books(
    books: Books, ledger: Ledger
) -> None:
    """The other half of `entry_wallet_mismatch`: the entry's wallet and organization are
    one reference to `wallets (id, organization_id)`, which never changes (migration 0029;
    an entry stored with another organization is refused by the same reference's check,
    `tests/integration/test_wallet_references.py`)."""
    entry_id = books.entries_of(ledger.bob)[0][0]
    with pytest.raises(IntegrityError, match='references of table "ledger_entries" never'):
        books.tamper(
            "UPDATE ledger_entries SET organization_id = :org WHERE id = :id",
            org=ledger.globex,
            id=entry_id,
        )


def test_balance_mismatch_and_nonzero_sums(db: Engine, books: Books, ledger: Ledger) -> None:
    books.tamper("UPDATE wallets SET balance = balance - 4 WHERE id = :w", w=ledger.carol)

    found = check(db)

    v = one(found, "balance_mismatch")
    assert (v.promise, v.wallet_id, v.actual - (v.expected or 0)) == (2, ledger.carol, -4)
    org = one(found, "organization_sum_nonzero")
    assert (org.promise, org.organization_id, org.actual) == (3, ledger.globex, -4)
    assert one(found, "ledger_sum_nonzero").actual == -4


def test_balance_after_wrong_names_the_first_wrong_entry(
    db: Engine, books: Books, ledger: Ledger
) -> None:
    # Given the first of alice's entries is deleted: every later balance_after is now off
    entries = books.entries_of(ledger.alice)
    books.tamper("DELETE FROM ledger_entries WHERE id = :id", id=entries[0][0])

    v = one(check(db), "balance_after_wrong")

    assert (v.wallet_id, v.entry_id, v.count) == (ledger.alice, entries[1][0], len(entries) - 1)
    assert v.actual == entries[1][3]


def test_overdraft_now_and_in_history(db: Engine, books: Books, ledger: Ledger) -> None:
    books.allow_overdrafts()
    balance = books.balance(ledger.bob)
    books.transfer(ledger.bob, ledger.alice, balance + 40)

    found = check(db)
    assert one(found, "overdraft").actual == -40
    assert one(found, "overdraft_in_history").wallet_id == ledger.bob

    # Once refunded, the current overdraft is gone but history remembers it
    books.transfer(ledger.alice, ledger.bob, 40)
    found = check(db)
    assert [v.kind for v in found] == ["overdraft_in_history"]


def test_duplicate_idempotency_key(db: Engine, books: Books, ledger: Ledger) -> None:
    with db.begin() as conn:
        conn.execute(
            text(
                "ALTER TABLE transactions"
                " DROP CONSTRAINT uq_transactions_organization_id_idempotency_key"
            )
        )
        for _ in range(2):
            books.transaction(conn, ledger.alice, ledger.bob, 5, status="FAILED", key="same")

    v = one(check(db), "duplicate_idempotency_key")

    assert (v.promise, v.organization_id, v.actual) == (5, ledger.acme, 2)


def test_posted_twice(db: Engine, books: Books, ledger: Ledger) -> None:
    # Given a transfer whose entries were written twice (balances follow both copies)
    with db.begin() as conn:
        tx = books.transaction(conn, ledger.alice, ledger.bob, 70)
        legs = [(ledger.alice, "DEBIT", 70), (ledger.bob, "CREDIT", 70)]
        books.post_legs(conn, legs, tx)
        books.post_legs(conn, legs, tx)

    found = check(db)

    assert {(v.kind, v.wallet_id, v.transaction_id, v.actual) for v in found} == {
        ("posted_twice", ledger.alice, tx, 2),
        ("posted_twice", ledger.bob, tx, 2),
    }


def test_an_entry_older_than_the_one_before_it_is_out_of_order(
    db: Engine, books: Books, ledger: Ledger
) -> None:
    # Given an entry written with an instant before alice's latest entry's
    tx = books.transfer(ledger.alice, ledger.bob, 5)
    books.tamper(
        "UPDATE ledger_entries SET created_at = created_at - interval '1 hour'"
        " WHERE transaction_id = :tx AND wallet_id = :w",
        tx=tx,
        w=ledger.alice,
    )

    v = one(check(db), "entries_out_of_order")

    assert (v.promise, v.wallet_id, v.transaction_id, v.count) == (2, ledger.alice, tx, 1)


def test_held_history_mismatch(db: Engine, books: Books, ledger: Ledger) -> None:
    # Given a wallet whose held changed behind its trigger's back
    with db.begin() as conn:
        conn.execute(text("ALTER TABLE wallets DISABLE TRIGGER wallets_held_history"))
        conn.execute(text("UPDATE wallets SET held = 5 WHERE id = :w"), {"w": ledger.carol})
        conn.execute(text("ALTER TABLE wallets ENABLE TRIGGER wallets_held_history"))

    found = check(db)

    assert {v.kind for v in found} == {"held_mismatch", "held_history_mismatch"}
    v = one(found, "held_history_mismatch")
    assert (v.promise, v.wallet_id, v.expected, v.actual) == (4, ledger.carol, 5, 0)


def test_a_held_change_through_the_trigger_keeps_the_history(
    db: Engine, books: Books, ledger: Ledger
) -> None:
    # Given a wallet whose held changed without a hold (the trigger still records it)
    books.tamper("UPDATE wallets SET held = 5 WHERE id = :w", w=ledger.carol)

    assert [v.kind for v in check(db)] == ["held_mismatch"]
