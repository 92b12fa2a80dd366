"""Runs are recorded with their findings and events, and incremental runs read only what
is new since each wallet's checkpoint."""

from __future__ import annotations

import random
import threading
import time
import uuid
from typing import Any

import pytest
from sqlalchemy import Engine, text

from ledger_core.reconciliation import DRIFT_EVENT, Kind, Mode, RunOutcome
from ledger_core.services.reconciliation import reconcile
from tests.reconciliation.books import Books
from tests.reconciliation.ledgers import Ledger, build_ledger


@pytest.fixture
def ledger(books: Books) -> Ledger:
    return build_ledger(books)


def run(db: Engine, mode: Mode = Mode.INCREMENTAL, **kwargs: Any) -> RunOutcome:
    outcome = reconcile(db, mode, pending_after_s=30, **kwargs)
    assert outcome.status == "COMPLETED", outcome.error
    return outcome


def kinds(outcome: RunOutcome) -> set[Kind]:
    assert outcome.findings is not None
    return {d.kind for d in outcome.findings.discrepancies}


def checked(outcome: RunOutcome) -> tuple[int, int]:
    assert outcome.findings is not None
    return outcome.findings.wallets_checked, outcome.findings.entries_checked


def rows(db: Engine, sql: str, **params: Any) -> list[Any]:
    with db.connect() as conn:
        return list(conn.execute(text(sql), params))


def test_a_run_is_recorded_with_its_discrepancies_and_one_event_per_organization(
    db: Engine, books: Books, ledger: Ledger
) -> None:
    # Given drift in both organizations
    books.tamper("UPDATE wallets SET balance = balance + 7 WHERE id = :w", w=ledger.bob)
    books.tamper("UPDATE wallets SET balance = balance - 3 WHERE id = :w", w=ledger.carol)

    outcome = run(db, Mode.FULL)

    (run_row,) = rows(db, "SELECT * FROM reconciliation_runs WHERE id = :id", id=outcome.run_id)
    assert (run_row.status, run_row.mode) == ("COMPLETED", "FULL")
    assert run_row.started_at <= run_row.finished_at
    assert (run_row.wallets_checked, run_row.entries_checked) == (7, 16)
    recorded = rows(
        db,
        "SELECT kind, wallet_id, organization_id, expected, actual"
        " FROM reconciliation_discrepancies WHERE run_id = :id ORDER BY id",
        id=outcome.run_id,
    )
    mismatches = {
        (r.wallet_id, r.actual - r.expected) for r in recorded if r.kind == "balance_mismatch"
    }
    assert mismatches == {(ledger.bob, 7), (ledger.carol, -3)}
    assert len(recorded) == 5  # two mismatches, two organization sums, one ledger sum

    events = rows(db, "SELECT organization_id, data FROM outbox WHERE type = :t", t=DRIFT_EVENT)
    assert {e.organization_id for e in events} == {ledger.acme, ledger.globex}
    for event in events:
        assert event.data["run_id"] == str(outcome.run_id)
        listed = event.data["discrepancies"]
        assert {d["organization_id"] for d in listed} == {str(event.organization_id)}
        assert event.data["discrepancy_count"] == len(listed) == 2


def test_a_clean_run_writes_no_event(db: Engine, ledger: Ledger) -> None:
    run(db, Mode.FULL)

    assert rows(db, "SELECT 1 FROM outbox WHERE type = :t", t=DRIFT_EVENT) == []


def test_reconciliation_never_changes_balances_or_entries(
    db: Engine, books: Books, ledger: Ledger
) -> None:
    books.tamper("UPDATE wallets SET balance = balance + 7 WHERE id = :w", w=ledger.bob)
    snapshot = "SELECT md5(string_agg(t::text, ',' ORDER BY t::text)) FROM {} t"
    before = [rows(db, snapshot.format(t))[0][0] for t in ("wallets", "ledger_entries")]

    run(db, Mode.FULL)
    run(db, Mode.INCREMENTAL)

    after = [rows(db, snapshot.format(t))[0][0] for t in ("wallets", "ledger_entries")]
    assert after == before


def test_incremental_runs_read_only_wallets_with_new_entries(
    db: Engine, books: Books, ledger: Ledger
) -> None:
    # Given a first run that checkpointed every wallet
    assert checked(run(db)) == (7, 16)
    assert checked(run(db)) == (0, 0)

    # When alice pays bob again
    books.transfer(ledger.alice, ledger.bob, 10)
    outcome = run(db)

    # Then only their two wallets and two new entries are read, and found clean
    assert checked(outcome) == (2, 2)
    assert kinds(outcome) == set()
    (cp,) = rows(db, "SELECT * FROM reconciliation_checkpoints WHERE wallet_id = :w", w=ledger.bob)
    assert (cp.last_entry_id, cp.balance) == (
        books.entries_of(ledger.bob)[-1][0],
        books.balance(ledger.bob),
    )


def test_incremental_runs_catch_drift_after_the_checkpoint_and_keep_reporting_it(
    db: Engine, books: Books, ledger: Ledger
) -> None:
    run(db)

    # A stored balance changed after its checkpoint, with no new entry
    books.tamper("UPDATE wallets SET balance = balance + 7 WHERE id = :w", w=ledger.bob)
    # and an unbalanced pair appended to alice and bob's wallets
    with db.begin() as conn:
        tx = books.transaction(conn, ledger.alice, ledger.bob, 100)
        books.post_legs(conn, [(ledger.alice, "DEBIT", 100), (ledger.bob, "CREDIT", 90)], tx)

    first, second = run(db), run(db)

    for outcome in (first, second):
        assert outcome.findings is not None
        found = {(d.kind, d.wallet_id, d.transaction_id) for d in outcome.findings.discrepancies}
        assert (Kind.BALANCE_MISMATCH, ledger.bob, None) in found
        assert (Kind.UNBALANCED_TRANSACTION, None, tx) in found
    # the dirty wallet and the wallets of the unbalanced transaction are read again
    assert checked(second) == (2, 2)


def test_drift_behind_a_checkpoint_is_found_by_the_full_run_and_then_by_every_run(
    db: Engine, books: Books, ledger: Ledger
) -> None:
    run(db)
    entry_id = books.entries_of(ledger.alice)[1][0]
    books.tamper("UPDATE ledger_entries SET balance_after = 1 WHERE id = :id", id=entry_id)

    assert kinds(run(db)) == set()  # behind alice's checkpoint: incremental cannot see it
    assert kinds(run(db, Mode.FULL)) == {Kind.BALANCE_CHAIN_BROKEN}
    again = run(db)  # the full run dropped alice's checkpoint: she is read from the start
    assert kinds(again) == {Kind.BALANCE_CHAIN_BROKEN}
    assert checked(again)[0] == 1


def test_a_redelivered_run_is_skipped_and_a_requested_run_is_taken(db: Engine) -> None:
    requested = uuid.uuid4()
    with db.begin() as conn:
        conn.execute(
            text(
                "INSERT INTO reconciliation_runs (id, mode, status) VALUES (:id, 'FULL', 'PENDING')"
            ),
            {"id": requested},
        )

    first = run(db, Mode.INCREMENTAL, run_id=requested)
    second = reconcile(db, Mode.INCREMENTAL, pending_after_s=30, run_id=requested)

    assert (first.run_id, first.mode) == (requested, Mode.FULL)  # the requested mode wins
    assert second.skipped
    assert len(rows(db, "SELECT 1 FROM reconciliation_runs")) == 1


def test_stuck_transfers_are_requeued_and_counted(db: Engine, books: Books, ledger: Ledger) -> None:
    books.unposted(ledger.alice, ledger.bob, 5, "PENDING", age_s=300)
    books.unposted(ledger.carol, ledger.globex_system, 5, "PENDING", age_s=300)
    kicks: list[None] = []

    outcome = run(db, requeue=lambda: kicks.append(None))

    assert len(kicks) == 1
    (row,) = rows(
        db, "SELECT pending_requeued FROM reconciliation_runs WHERE id = :id", id=outcome.run_id
    )
    assert row.pending_requeued == 2
    assert {e.organization_id for e in rows(db, "SELECT organization_id FROM outbox")} == {
        ledger.acme,
        ledger.globex,
    }


def test_a_broker_outage_does_not_cost_the_run_its_findings(
    db: Engine, books: Books, ledger: Ledger
) -> None:
    books.unposted(ledger.alice, ledger.bob, 5, "PENDING", age_s=300)

    def broker_down() -> None:
        raise ConnectionError("broker unreachable")

    outcome = run(db, requeue=broker_down)

    assert kinds(outcome) == {Kind.STUCK_PENDING}
    (row,) = rows(
        db, "SELECT pending_requeued FROM reconciliation_runs WHERE id = :id", id=outcome.run_id
    )
    assert row.pending_requeued == 0


def test_runs_report_no_drift_while_transfers_post_concurrently(
    db: Engine, books: Books, ledger: Ledger
) -> None:
    # Given two posters moving money among five wallets as fast as they can
    wallets = [
        ledger.alice,
        ledger.bob,
        ledger.acme_system,
        books.wallet(ledger.acme),
        books.wallet(ledger.acme),
    ]
    books.transfer(ledger.acme_system, wallets[3], 10_000)
    stop, errors, posted = threading.Event(), [], []

    def post() -> None:
        rng = random.Random()
        while not stop.is_set():
            src, dst = rng.sample(wallets, 2)
            try:
                if src == ledger.acme_system or books.balance(src) > 20:
                    posted.append(books.transfer(src, dst, rng.randint(1, 10)))
            except Exception as exc:  # a deadlock here would be a bug in the test poster
                errors.append(exc)

    posters = [threading.Thread(target=post) for _ in range(2)]
    for t in posters:
        t.start()
    try:
        # When reconciliation runs repeatedly, incremental and full, meanwhile
        outcomes: list[RunOutcome] = []
        deadline = time.monotonic() + 60
        while (len(outcomes) < 12 or len(posted) < 200) and time.monotonic() < deadline:
            outcomes.append(run(db, Mode.FULL if len(outcomes) % 3 == 0 else Mode.INCREMENTAL))
    finally:
        stop.set()
        for t in posters:
            t.join()

    # Then no run saw drift, and the last incremental run picks up where they left off
    assert errors == []
    assert len(posted) >= 200
    assert [kinds(o) for o in outcomes] == [set()] * len(outcomes)
    assert sum(checked(o)[1] for o in outcomes[1:] if o.mode is Mode.INCREMENTAL) > 0
    assert kinds(run(db)) == set()
    assert kinds(run(db, Mode.FULL)) == set()


def test_a_run_that_cannot_read_the_ledger_is_recorded_as_failed(
    db: Engine, ledger: Ledger
) -> None:
    # Given the entries table is out of reach (renamed, as a broken migration might leave it)
    with db.begin() as conn:
        conn.execute(text("ALTER TABLE ledger_entries RENAME TO ledger_entries_elsewhere"))

    outcome = reconcile(db, Mode.FULL, pending_after_s=30)

    assert (outcome.status, outcome.findings) == ("FAILED", None)
    (row,) = rows(db, "SELECT status, error, finished_at FROM reconciliation_runs")
    assert row.status == "FAILED"
    assert "ledger_entries" in row.error
    assert row.finished_at is not None
