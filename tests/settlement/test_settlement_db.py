"""Settlement against real PostgreSQL: netting, zero sums, races and transfers mid-run."""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from sqlalchemy import Engine, text

from ledger_core.persistence.settlement.settle import (
    UNSETTLED_OF_PAIR,
    Pair,
    run_settlement,
    settle_pair,
    unsettled_pairs,
)
from ledger_core.settlement import Settlement
from tests.settlement.books_sql import (
    clearing_balance,
    events_of,
    nonzero_books,
    settlement_of_each_transfer,
    settlements_agree_with_items,
    wallet_balance,
)
from tests.settlement.ledger import CrossLedger, linked_pair, settle


def test_60_one_way_and_15_back_settle_as_45(ledger: CrossLedger, db: Engine) -> None:
    """Both directions net into one settlement that zeroes both clearing wallets."""
    # Given 60.00 from A to B and 15.00 back
    a, b = linked_pair(ledger)
    sent = ledger.pay(a, b, 60_00)
    back = ledger.pay(b, a, 15_00)
    assert nonzero_books(db) == []
    assert clearing_balance(db, a.id, b.id) == 45_00  # due to B
    assert clearing_balance(db, b.id, a.id) == -45_00  # due from A
    systems = wallet_balance(db, a.system), wallet_balance(db, b.system)

    # When settlement runs
    [s] = settle(db)

    # Then one settlement records both flows and the net, A paying B
    assert (s.payer_organization_id, s.payee_organization_id) == (a.id, b.id)
    assert (s.gross_payer_to_payee, s.gross_payee_to_payer, s.net_amount) == (60_00, 15_00, 45_00)
    assert s.transfer_count == 2 and s.status == "COMPLETED"
    with db.connect() as conn:
        posted = dict(
            conn.execute(
                text("SELECT id, posted_at FROM transactions WHERE id IN (:x, :y)"),
                {"x": sent, "y": back},
            ).all()
        )
    assert (s.window_start, s.window_end) == (posted[sent], posted[back])
    assert settlement_of_each_transfer(db) == {sent: [s.id], back: [s.id]}
    # and both clearing wallets are back at zero, the money leaving A's books and entering B's
    assert clearing_balance(db, a.id, b.id) == 0 == clearing_balance(db, b.id, a.id)
    assert wallet_balance(db, a.system) == systems[0] + 45_00
    assert wallet_balance(db, b.system) == systems[1] - 45_00
    assert nonzero_books(db) == []
    with db.connect() as conn:
        entries = conn.execute(
            text(
                "SELECT organization_id, direction, amount FROM ledger_entries"
                " WHERE settlement_id = :s ORDER BY id"
            ),
            {"s": s.id},
        ).all()
    assert sorted(entries) == sorted(
        [
            (a.id, "DEBIT", 45_00),
            (a.id, "CREDIT", 45_00),
            (b.id, "CREDIT", 45_00),
            (b.id, "DEBIT", 45_00),
        ]
    )
    # and each organization hears of it
    events = events_of(db, "settlement.completed")
    assert sorted(e.organization_id for e in events) == sorted([a.id, b.id])
    assert all(e.data == s.as_json() for e in events)
    assert s.as_json()["net_amount"] == "45.00"


def test_a_second_run_finds_nothing_left(ledger: CrossLedger, db: Engine) -> None:
    a, b = linked_pair(ledger)
    ledger.pay(a, b, 10_00)
    assert len(settle(db)) == 1
    assert settle(db) == []
    with db.connect() as conn:
        assert unsettled_pairs(conn) == []


def test_equal_flows_settle_at_zero_without_entries(ledger: CrossLedger, db: Engine) -> None:
    """Every transfer still lands in a settlement when the positions cancel out."""
    a, b = linked_pair(ledger)
    ledger.pay(a, b, 20_00)
    ledger.pay(b, a, 20_00)
    [s] = settle(db)
    assert (s.net_amount, s.gross_payer_to_payee, s.gross_payee_to_payer) == (0, 20_00, 20_00)
    assert s.payer_organization_id == min(a.id, b.id)
    with db.connect() as conn:
        count = conn.scalar(
            text("SELECT count(*) FROM ledger_entries WHERE settlement_id = :s"), {"s": s.id}
        )
    assert count == 0
    assert all(len(v) == 1 for v in settlement_of_each_transfer(db).values())


def test_pairs_and_currencies_settle_separately(ledger: CrossLedger, db: Engine) -> None:
    """One settlement per pair; an organization's own run leaves other pairs alone."""
    a, b, c = ledger.org(funded=100_00), ledger.org(funded=100_00), ledger.org(funded=100_00)
    ledger.accept(b, a)
    ledger.accept(c, a)
    ledger.accept(c, b)
    ledger.pay(a, b, 5_00)
    ledger.pay(a, c, 7_00)
    ledger.pay(b, c, 11_00)
    with db.connect() as conn:
        only_a = run_settlement(conn, a.id)
    assert sorted(s.net_amount for s in only_a) == [5_00, 7_00]
    assert clearing_balance(db, b.id, c.id) == 11_00  # B-C untouched
    [rest] = settle(db)
    assert (rest.payer_organization_id, rest.payee_organization_id, rest.net_amount) == (
        b.id,
        c.id,
        11_00,
    )
    assert nonzero_books(db) == []


def test_racing_runs_put_every_transfer_in_exactly_one_settlement(
    ledger: CrossLedger, db: Engine
) -> None:
    """Two runs at the same instant, over several pairs and both directions."""
    # Given three organizations that all accept each other, with transfers every way
    orgs = [ledger.org(funded=1_000_00) for _ in range(3)]
    for payee in orgs:
        for payer in orgs:
            if payee is not payer:
                ledger.accept(payee, payer)
    for round_ in range(3):
        for n, payer in enumerate(orgs):
            for m, payee in enumerate(orgs):
                if n != m:
                    ledger.submit(
                        payer, payer.wallet, payee.wallet, 1_00 + 37 * n + 11 * m + round_
                    )
        ledger.post_all()

        # When two runs start together
        start = threading.Barrier(2)

        def race(start: threading.Barrier = start) -> list[Settlement]:
            start.wait()
            return settle(db)

        with ThreadPoolExecutor(2) as pool:
            results = [f.result() for f in [pool.submit(race), pool.submit(race)]]

        # Then each pair was settled once, by one run or the other
        written = results[0] + results[1]
        assert len(written) == 3
        assert len({s.id for s in written}) == 3
        assignment = settlement_of_each_transfer(db)
        assert len(assignment) == 6 * (round_ + 1)
        assert all(len(settlements) == 1 for settlements in assignment.values())
        assert settlements_agree_with_items(db) == []
        for payer in orgs:
            for payee in orgs:
                if payer is not payee:
                    assert clearing_balance(db, payer.id, payee.id) == 0
        assert nonzero_books(db) == []


def test_runs_racing_with_posting_never_lose_or_double_a_transfer(
    ledger: CrossLedger, db: Engine
) -> None:
    """Settlement runs in a loop while transfers keep posting; a last run settles the rest."""
    a, b = linked_pair(ledger)
    stop = threading.Event()
    written: list[Settlement] = []

    def keep_settling() -> None:
        while not stop.is_set():
            written.extend(settle(db))

    with ThreadPoolExecutor(2) as pool:
        runners = [pool.submit(keep_settling) for _ in range(2)]
        for n in range(20):
            payer, payee = (a, b) if n % 3 else (b, a)
            ledger.pay(payer, payee, 1_00 + n)
        stop.set()
        for runner in runners:
            runner.result()
    written.extend(settle(db))
    assignment = settlement_of_each_transfer(db)
    assert len(assignment) == 20
    assert all(len(settlements) == 1 for settlements in assignment.values())
    assert sum(s.transfer_count for s in written) == 20
    assert settlements_agree_with_items(db) == []
    assert clearing_balance(db, a.id, b.id) == 0 == clearing_balance(db, b.id, a.id)
    assert nonzero_books(db) == []


def test_a_transfer_posting_during_a_run_lands_in_the_next_settlement(
    ledger: CrossLedger, db: Engine
) -> None:
    # Given a settled-to-be 30.00 from A, and 12.00 from B accepted but not yet posted
    a, b = linked_pair(ledger)
    first = ledger.pay(a, b, 30_00)
    late = ledger.submit(b, b.wallet, a.wallet, 12_00)
    claimed, release = threading.Event(), threading.Event()

    def slow_run() -> Settlement | None:
        with db.begin() as conn:
            settlement = settle_pair(conn, Pair(min(a.id, b.id), max(a.id, b.id), "USD"))
            claimed.set()
            assert release.wait(30)
        return settlement

    with ThreadPoolExecutor(2) as pool:
        # When a settlement run has claimed what was posted and holds its transaction open
        run = pool.submit(slow_run)
        assert claimed.wait(30)
        # and the posting worker takes B's transfer meanwhile
        posting = pool.submit(ledger.post_all)
        time.sleep(0.5)
        # Then the posting waits for the run's wallet locks instead of slipping in beside it
        assert ledger.status(late) == "PENDING"
        release.set()
        settled = run.result()
        posting.result()
    assert settled is not None and settled.transfer_count == 1
    assert ledger.status(late) == "COMPLETED"
    assert settlement_of_each_transfer(db) == {first: [settled.id], late: []}
    assert clearing_balance(db, a.id, b.id) == -12_00
    assert nonzero_books(db) == []

    # And the next run settles it, B now paying A
    [following] = settle(db)
    assert (following.payer_organization_id, following.net_amount) == (b.id, 12_00)
    assert settlement_of_each_transfer(db)[late] == [following.id]
    assert clearing_balance(db, a.id, b.id) == 0 == clearing_balance(db, b.id, a.id)


def test_settlement_events_go_to_both_organizations_each_time(
    ledger: CrossLedger, db: Engine
) -> None:
    a, b = linked_pair(ledger)
    for n in range(2):
        ledger.pay(a, b, 1_00 + n)
        settle(db)
    events = events_of(db, "settlement.completed")
    assert len(events) == 4
    assert [e.organization_id for e in events].count(a.id) == 2
    assert {e.organization_id for e in events} == {a.id, b.id}


def _rows_read(plan: dict[str, Any], tables: set[str]) -> int:
    """Rows that the scans of a JSON plan returned from `tables` (or their indexes)."""
    read = 0
    where = f"{plan.get('Relation Name')} {plan.get('Index Name')}"
    if "Scan" in str(plan["Node Type"]) and any(t in where for t in tables):
        read += int(plan["Actual Rows"]) * int(plan["Actual Loops"])
    for child in plan.get("Plans", []):
        read += _rows_read(child, tables)
    return read


def _read_by_next_run(db: Engine, pair: Pair) -> tuple[int, int]:
    """Transfer rows and entry rows that reading the pair's unsettled transfers goes through."""
    with db.connect() as conn:
        plan = conn.execute(
            text("EXPLAIN (ANALYZE, COSTS OFF, TIMING OFF, FORMAT JSON) " + str(UNSETTLED_OF_PAIR)),
            {"a": pair.org_a, "b": pair.org_b, "currency": pair.currency},
        ).scalar_one()[0]["Plan"]
    return _rows_read(plan, {"transactions"}), _rows_read(plan, {"ledger_entries"})


def test_a_run_reads_what_came_since_the_last_settlement_not_the_history(
    ledger: CrossLedger, db: Engine
) -> None:
    """Each clearing wallet's newest settlement entry marks what is settled: the next run
    reads the transfers posted after it, however long the pair's settled history."""
    a, b = linked_pair(ledger)
    for _ in range(20):
        ledger.pay(a, b, 1_00)
    pair = Pair(*sorted((a.id, b.id)), ledger.currency)
    transfers_read, _ = _read_by_next_run(db, pair)
    assert transfers_read >= 20  # nothing settled yet: all of it
    assert len(settle(db)) == 1

    ledger.pay(b, a, 5_00)
    transfers_read, entries_read = _read_by_next_run(db, pair)
    assert transfers_read <= 2, transfers_read  # the new one, by its key (both branches)
    assert entries_read <= 6, entries_read  # per wallet: its entry, the last settlement's

    [s] = settle(db)
    assert (s.transfer_count, s.net_amount) == (1, 5_00)
    assert all(len(v) == 1 for v in settlement_of_each_transfer(db).values())


def test_after_a_settlement_at_zero_the_next_transfer_settles_alone(
    ledger: CrossLedger, db: Engine
) -> None:
    """A settlement that nets to zero writes no entry, so it moves no mark: its transfers
    are read again by the next run, found settled, and only the new one is netted."""
    a, b = linked_pair(ledger)
    ledger.pay(a, b, 20_00)
    ledger.pay(b, a, 20_00)
    [zero] = settle(db)
    assert zero.net_amount == 0
    assert settle(db) == []

    ledger.pay(a, b, 7_00)
    [s] = settle(db)
    assert (s.transfer_count, s.net_amount, s.payer_organization_id) == (1, 7_00, a.id)
    assert all(len(v) == 1 for v in settlement_of_each_transfer(db).values())
    assert settlements_agree_with_items(db) == []
    with db.connect() as conn:
        assert unsettled_pairs(conn) == []
