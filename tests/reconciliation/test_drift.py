"""Each kind of drift, written behind the ledger's back, is reported exactly where it is."""

from __future__ import annotations

import pytest
from sqlalchemy import Engine

from ledger_core.persistence.reconciliation.checks import check_ledger
from ledger_core.persistence.reconciliation.runs import consistent_snapshot
from ledger_core.reconciliation import Discrepancy, Findings, Kind, Mode
from tests.reconciliation.books import Books
from tests.reconciliation.ledgers import Ledger, build_ledger


def full_check(db: Engine, pending_after_s: int = 30) -> Findings:
    with consistent_snapshot(db) as conn:
        return check_ledger(conn, Mode.FULL, pending_after_s)


def only(findings: Findings, kind: Kind) -> Discrepancy:
    matches = [d for d in findings.discrepancies if d.kind is kind]
    assert len(matches) == 1, findings.discrepancies
    return matches[0]


@pytest.fixture
def ledger(books: Books) -> Ledger:
    return build_ledger(books)


def test_a_clean_ledger_reports_nothing(db: Engine, ledger: Ledger) -> None:
    """Funding, transfers, cross-org, settlement and unposted transfers all reconcile."""
    findings = full_check(db)

    assert findings.discrepancies == ()
    assert findings.wallets_checked == 7
    assert findings.entries_checked == 16
    assert findings.pending_stuck == 0


def test_a_changed_stored_balance_is_a_balance_mismatch(
    db: Engine, books: Books, ledger: Ledger
) -> None:
    # Given bob's stored balance is raised by 7 without any entry
    before = books.balance(ledger.bob)
    books.tamper("UPDATE wallets SET balance = balance + 7 WHERE id = :w", w=ledger.bob)

    # When the ledger is checked
    findings = full_check(db)

    # Then bob's wallet is named, with what its entries say and what is stored
    mismatch = only(findings, Kind.BALANCE_MISMATCH)
    assert (mismatch.wallet_id, mismatch.organization_id) == (ledger.bob, ledger.acme)
    assert (mismatch.expected, mismatch.actual) == (before, before + 7)
    # and the books of Acme, and the ledger, no longer sum to zero
    org_sum = only(findings, Kind.ORGANIZATION_SUM_NONZERO)
    assert (org_sum.organization_id, org_sum.currency, org_sum.actual) == (ledger.acme, "USD", 7)
    assert only(findings, Kind.LEDGER_SUM_NONZERO).actual == 7
    assert {d.kind for d in findings.discrepancies} == {
        Kind.BALANCE_MISMATCH,
        Kind.ORGANIZATION_SUM_NONZERO,
        Kind.LEDGER_SUM_NONZERO,
    }


def test_a_deleted_entry_breaks_its_transaction_and_its_wallet(
    db: Engine, books: Books, ledger: Ledger
) -> None:
    # Given bob's credit from alice's 2,500 transfer is deleted (bob has later entries)
    entry_id, _, amount, _ = books.entries_of(ledger.bob)[0]
    books.tamper("DELETE FROM ledger_entries WHERE id = :id", id=entry_id)

    findings = full_check(db)

    # Then the transaction is unbalanced in Acme's books: 2,500 debited, nothing credited
    unbalanced = only(findings, Kind.UNBALANCED_TRANSACTION)
    assert unbalanced.transaction_id == ledger.alice_to_bob
    assert (unbalanced.organization_id, unbalanced.expected, unbalanced.actual) == (
        ledger.acme,
        amount,
        0,
    )
    # and bob's balance is more than his remaining entries explain
    mismatch = only(findings, Kind.BALANCE_MISMATCH)
    assert mismatch.wallet_id == ledger.bob
    assert mismatch.actual - mismatch.expected == amount
    # and bob's chain breaks at the entry that now comes first
    chain = only(findings, Kind.BALANCE_CHAIN_BROKEN)
    next_id, _, next_amount, next_after = books.entries_of(ledger.bob)[0]
    assert (chain.wallet_id, chain.entry_id) == (ledger.bob, next_id)
    assert (chain.expected, chain.actual) == (-next_amount, next_after)


def test_an_unbalanced_pair_is_reported_with_its_transaction(
    db: Engine, books: Books, ledger: Ledger
) -> None:
    # Given a COMPLETED transaction whose entries debit 100 but credit only 90,
    # each wallet's balance and chain kept consistent with its own entries
    with db.begin() as conn:
        tx = books.transaction(conn, ledger.alice, ledger.bob, 100)
        books.post_legs(conn, [(ledger.alice, "DEBIT", 100), (ledger.bob, "CREDIT", 90)], tx)

    findings = full_check(db)

    unbalanced = only(findings, Kind.UNBALANCED_TRANSACTION)
    assert (unbalanced.transaction_id, unbalanced.organization_id) == (tx, ledger.acme)
    assert (unbalanced.currency, unbalanced.expected, unbalanced.actual) == ("USD", 100, 90)
    assert only(findings, Kind.ORGANIZATION_SUM_NONZERO).actual == -10
    assert not [d for d in findings.discrepancies if d.wallet_id is not None]


def test_a_broken_balance_after_is_reported_at_that_entry(
    db: Engine, books: Books, ledger: Ledger
) -> None:
    # Given the second entry of alice's wallet claims 1 more than the running balance
    entries = books.entries_of(ledger.alice)
    entry_id, _, _, after = entries[1]
    books.tamper("UPDATE ledger_entries SET balance_after = balance_after + 1 WHERE id = :id",
                 id=entry_id)  # fmt: skip

    findings = full_check(db)

    # Then only the chain is reported, at that entry: stored balances still match sums
    chain = only(findings, Kind.BALANCE_CHAIN_BROKEN)
    assert (chain.wallet_id, chain.entry_id, chain.transaction_id) == (
        ledger.alice,
        entry_id,
        ledger.alice_to_bob,
    )
    assert (chain.expected, chain.actual) == (after, after + 1)
    assert [d.kind for d in findings.discrepancies] == [Kind.BALANCE_CHAIN_BROKEN]


def test_a_completed_transfer_without_entries(db: Engine, books: Books, ledger: Ledger) -> None:
    with db.begin() as conn:
        tx = books.transaction(conn, ledger.alice, ledger.bob, 321)

    findings = full_check(db)

    missing = only(findings, Kind.POSTED_WITHOUT_ENTRIES)
    assert (missing.transaction_id, missing.organization_id) == (tx, ledger.acme)
    assert (missing.expected, missing.actual) == (321, 0)
    assert len(findings.discrepancies) == 1


def test_a_cross_org_transfer_missing_one_side_of_its_books(
    db: Engine, books: Books, ledger: Ledger
) -> None:
    # Given Globex's two entries of the cross-org transfer are deleted
    books.tamper(
        "DELETE FROM ledger_entries WHERE transaction_id = :tx AND organization_id = :org",
        tx=ledger.cross,
        org=ledger.globex,
    )

    findings = full_check(db)

    missing = only(findings, Kind.POSTED_WITHOUT_ENTRIES)
    assert (missing.transaction_id, missing.organization_id) == (ledger.cross, ledger.globex)
    assert missing.expected == 1_200
    mismatched = {d.wallet_id for d in findings.discrepancies if d.kind is Kind.BALANCE_MISMATCH}
    assert mismatched == {ledger.globex_clearing, ledger.carol}


def test_entries_on_a_failed_transfer(db: Engine, books: Books, ledger: Ledger) -> None:
    with db.begin() as conn:
        tx = books.transaction(conn, ledger.alice, ledger.bob, 50, status="FAILED")
        books.post_legs(conn, [(ledger.alice, "DEBIT", 50), (ledger.bob, "CREDIT", 50)], tx)

    findings = full_check(db)

    stray = only(findings, Kind.UNPOSTED_WITH_ENTRIES)
    assert (stray.transaction_id, stray.organization_id, stray.actual) == (tx, ledger.acme, 2)
    assert len(findings.discrepancies) == 1


def test_an_unbalanced_settlement(db: Engine, books: Books, ledger: Ledger) -> None:
    st = books.settlement(
        ledger.acme, ledger.globex, [(ledger.acme_clearing, "DEBIT", 10), (ledger.acme_system,
                                                                            "CREDIT", 9)]
    )  # fmt: skip

    findings = full_check(db)

    unbalanced = only(findings, Kind.UNBALANCED_SETTLEMENT)
    assert (unbalanced.settlement_id, unbalanced.organization_id) == (st, ledger.acme)
    assert (unbalanced.expected, unbalanced.actual) == (10, 9)


def test_an_overdrawn_primary_wallet(db: Engine, books: Books, ledger: Ledger) -> None:
    # Given a bug let bob pay out more than he holds (the CHECK constraint is gone)
    books.allow_overdrafts()
    balance = books.balance(ledger.bob)
    books.transfer(ledger.bob, ledger.alice, balance + 40)

    findings = full_check(db)

    overdraft = only(findings, Kind.OVERDRAFT)
    assert (overdraft.wallet_id, overdraft.expected, overdraft.actual) == (ledger.bob, 0, -40)
    assert len(findings.discrepancies) == 1


def test_held_funds_that_no_open_hold_explains(db: Engine, books: Books, ledger: Ledger) -> None:
    # Given a bug reserved 7 on bob's wallet without a HELD transfer behind it
    books.tamper("UPDATE wallets SET held = 7 WHERE id = :id", id=ledger.bob)

    findings = full_check(db)

    mismatch = only(findings, Kind.HELD_MISMATCH)
    assert (mismatch.wallet_id, mismatch.expected, mismatch.actual) == (ledger.bob, 0, 7)
    assert len(findings.discrepancies) == 1


def test_system_and_clearing_wallets_may_go_negative(db: Engine, ledger: Ledger) -> None:
    findings = full_check(db)

    assert findings.discrepancies == ()


def test_stuck_pending_transfers_are_counted_per_organization(
    db: Engine, books: Books, ledger: Ledger
) -> None:
    # Given two old PENDING transfers in Acme and one young one (from the ledger)
    oldest = books.unposted(ledger.alice, ledger.bob, 5, "PENDING", age_s=120)
    books.unposted(ledger.bob, ledger.alice, 6, "PENDING", age_s=60)

    findings = full_check(db, pending_after_s=30)

    stuck = only(findings, Kind.STUCK_PENDING)
    assert (stuck.organization_id, stuck.transaction_id) == (ledger.acme, oldest)
    assert (stuck.expected, stuck.actual) == (0, 2)
    assert findings.pending_stuck == 2
