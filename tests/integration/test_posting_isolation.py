"""One tenant never stalls another: unwritable transfers fail alone, claims are fair.

Against a real PostgreSQL. Transfers that break the write are made with a trigger that
refuses one amount, in a database of the test's own.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from sqlalchemy import Connection, Engine, text

from ledger_core.money import MAX_MINOR_UNITS
from ledger_core.persistence.transfers.claim import claim_batch
from ledger_core.persistence.transfers.posting import post_batch
from tests.support.databases import fresh_engine
from tests.support.ledger import Book, create_book, insert_intents
from tests.support.ledger_checks import final_states
from tests.support.plans import plan_scans

POISON = 4242
REFUSE_POISON = """
CREATE FUNCTION refuse_poison() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF NEW.amount = 4242 THEN
        RAISE EXCEPTION 'simulated bug: amount 4242 cannot be written';
    END IF;
    RETURN NEW;
END $$;
CREATE TRIGGER refuse_poison BEFORE INSERT ON ledger_entries
    FOR EACH ROW EXECUTE FUNCTION refuse_poison();
"""


@pytest.fixture
def scratch(service_urls: tuple[str, str]) -> Iterator[Engine]:
    """A database of this test's own, with a trigger that refuses entries of 42.42."""
    with fresh_engine(service_urls[0], "vaultcraft_isolation") as engine:
        with engine.begin() as conn:
            conn.exec_driver_sql(REFUSE_POISON)
        yield engine


def _drain(engine: Engine) -> int:
    batches = 0
    while True:
        with engine.begin() as conn:
            result = post_batch(conn, 1000)
        if result.claimed == 0 and not result.more:
            return batches
        batches += 1


def test_a_transfer_that_cannot_be_written_fails_alone(scratch: Engine) -> None:
    """The database refuses one transfer's entries: it alone fails, the rest of its batch posts."""
    book = create_book(scratch, 3)
    a, b, c = book.wallet_ids
    moves = [(book.system_wallet_id, w, 100 + n) for n, w in enumerate([a, b, c] * 5)]
    moves.insert(7, (book.system_wallet_id, b, POISON))
    with scratch.begin() as conn:
        ids = insert_intents(conn, book, moves)

    assert _drain(scratch) == 1

    with scratch.connect() as conn:
        states = final_states(conn, ids)
        events = conn.execute(
            text(
                "SELECT count(*) FROM outbox WHERE data->>'id' = :id AND type = 'transfer.failed'"
            ),
            {"id": str(ids[7])},
        ).scalar_one()
    assert states[7] == ("FAILED", "posting_error")
    assert states[:7] + states[8:] == [("COMPLETED", None)] * 15
    assert events == 1


def test_an_atomic_batch_with_an_unwritable_member_fails_whole(scratch: Engine) -> None:
    """Bisection keeps an atomic batch together: all its members fail, the others post."""
    book = create_book(scratch, 2)
    a, b = book.wallet_ids
    with scratch.begin() as conn:
        ids = insert_intents(
            conn,
            book,
            [
                (book.system_wallet_id, a, 5),
                (book.system_wallet_id, b, POISON),
                (book.system_wallet_id, a, 6),
                (book.system_wallet_id, b, 7),
            ],
        )
        conn.execute(
            text("UPDATE transactions SET atomic_group_id = :g WHERE id = ANY(:ids)"),
            {"g": ids[1], "ids": ids[1:3]},
        )

    _drain(scratch)

    with scratch.connect() as conn:
        assert final_states(conn, ids) == [
            ("COMPLETED", None),
            ("FAILED", "posting_error"),
            ("FAILED", "posting_error"),
            ("COMPLETED", None),
        ]


def test_two_maximal_deposits_from_system_fail_the_second_and_nothing_waits(
    scratch: Engine,
) -> None:
    """The reported attack: the second deposit fails amount_out_of_range, another tenant posts.

    In a database of its own: the batch must claim these three transfers and no other
    test's PENDING ones.
    """
    engine = scratch
    attacker, other = create_book(engine, 2), create_book(engine, 1)
    a, b = attacker.wallet_ids
    with engine.begin() as conn:
        first, second = insert_intents(
            conn,
            attacker,
            [
                (attacker.system_wallet_id, a, MAX_MINOR_UNITS),
                (attacker.system_wallet_id, b, MAX_MINOR_UNITS),
            ],
        )
        (victim,) = insert_intents(conn, other, [(other.system_wallet_id, other.wallet_ids[0], 1)])

    with engine.begin() as conn:
        result = post_batch(conn, 1000)

    assert result.claimed == 3
    with engine.connect() as conn:
        assert final_states(conn, [first, second, victim]) == [
            ("COMPLETED", None),
            ("FAILED", "amount_out_of_range"),
            ("COMPLETED", None),
        ]


def _flood(conn: Connection, book: Book, count: int, status: str = "PENDING") -> None:
    """`count` transfers of one organization in `status`, written in one statement: PENDING
    ones wait for posting, COMPLETED ones stand for a ledger's settled past."""
    conn.execute(
        text("""
        INSERT INTO transactions (organization_id, destination_organization_id, idempotency_key,
            request_hash, kind, source_wallet_id, destination_wallet_id, amount, currency,
            metadata, status, posted_at)
        SELECT :o, :o, :status || '-' || n, 'h', 'TRANSFER', :s, :d, 1, :c, '{}', :status,
               CASE WHEN :status = 'COMPLETED' THEN now() END
        FROM generate_series(1, :count) AS n
        """),
        {
            "o": book.organization_id,
            "s": book.system_wallet_id,
            "d": book.wallet_ids[0],
            "c": book.currency,
            "count": count,
            "status": status,
        },
    )


def test_a_flooding_tenant_shares_each_batch_with_the_others(scratch: Engine) -> None:
    """20,000 waiting transfers of one tenant: the next batch still takes the other's one."""
    flooder, quiet = create_book(scratch, 1), create_book(scratch, 1)
    with scratch.begin() as conn:
        _flood(conn, flooder, 20_000)
        (waiting,) = insert_intents(conn, quiet, [(quiet.system_wallet_id, quiet.wallet_ids[0], 3)])
        conn.execute(text("ANALYZE transactions"))

    with scratch.begin() as conn:
        claimed = claim_batch(conn, 1000)
        plan = "\n".join(
            conn.execute(
                text("EXPLAIN (ANALYZE, COSTS OFF) " + str(claim_sql())),
                {"limit": 1000, "share": 100},
            ).scalars()
        )

    assert waiting in claimed.rows
    assert len(claimed.transfers) == 101  # a shared batch: 100 of the flood, 1 of the other
    assert claimed.more
    assert "ix_transactions_pending_org_seq" in plan
    assert "Seq Scan on transactions" not in plan
    assert "ix_transactions_pending_seq" not in plan  # would read the flood to find the other

    with scratch.begin() as conn:
        narrow = claim_batch(conn, 1000, fair_share=10)  # VAULTCRAFT_FAIR_SHARE=10
    assert waiting in narrow.rows
    assert len(narrow.transfers) == 11 and narrow.more


def claim_sql() -> object:
    from ledger_core.persistence.transfers.claim import CLAIM

    return CLAIM


def _analyze_a_settled_past(engine: Engine, count: int) -> None:
    """`count` COMPLETED transfers of an organization of their own, then statistics taken
    while nothing waits (autovacuum off, so that none is taken later by itself)."""
    past = create_book(engine, 1)
    with engine.begin() as conn:
        conn.execute(text("ALTER TABLE transactions SET (autovacuum_enabled = off)"))
        _flood(conn, past, count, "COMPLETED")
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        conn.execute(text("VACUUM ANALYZE transactions"))


def test_the_oldest_pending_probes_read_one_index_entry_under_a_backlog(scratch: Engine) -> None:
    """100,000 PENDING transfers: the stall gauge and the rescue probe each read one row."""
    from ledger_core.persistence.transfers.pending_probe import PENDING_WAITING
    from ledger_core.persistence.transfers.pipeline_health import OLDEST_PENDING_AGE_SQL

    book = create_book(scratch, 1)
    with scratch.begin() as conn:
        _flood(conn, book, 100_000)
        conn.execute(text("ANALYZE transactions"))
        conn.execute(text("UPDATE transactions SET created_at = now() - interval '1 hour'"))

    with scratch.connect() as conn:
        age = conn.execute(text(OLDEST_PENDING_AGE_SQL)).scalar_one()
        stalled = conn.exec_driver_sql(PENDING_WAITING, {"after": 60}).scalar_one()
        fresh = conn.exec_driver_sql(PENDING_WAITING, {"after": 7200}).scalar_one()
        plans = [
            conn.exec_driver_sql(
                "EXPLAIN (ANALYZE, COSTS OFF, TIMING OFF, FORMAT JSON) " + sql, {"after": 60}
            ).scalar_one()[0]["Plan"]
            for sql in (OLDEST_PENDING_AGE_SQL.replace("%", "%%"), PENDING_WAITING)
        ]

    assert 3590 < age < 3700 and stalled is True and fresh is False
    for plan in plans:
        scans = plan_scans(plan)
        assert ("Index Scan", "ix_transactions_pending_seq", 1) in scans, scans
        assert all(rows <= 1 for _, _, rows in scans), scans  # no table is read through


def test_a_surge_after_a_quiet_analyze_is_claimed_through_the_organization_index(
    scratch: Engine,
) -> None:
    """Statistics taken while nothing waited (a quiet hour, or a fresh ANALYZE) estimate
    no PENDING row at all. A surge of 30,000 must still be claimed a batch at a time
    through `ix_transactions_pending_org_seq`, not by reading and sorting the whole
    backlog through another PENDING index: that made every claim O(backlog)."""
    from ledger_core.persistence.transfers.pending_probe import PENDING_WAITING
    from ledger_core.persistence.transfers.pipeline_health import OLDEST_PENDING_AGE_SQL

    surging, quiet = create_book(scratch, 1), create_book(scratch, 1)
    _analyze_a_settled_past(scratch, 100_000)
    with scratch.begin() as conn:
        _flood(conn, surging, 30_000)
        insert_intents(conn, quiet, [(quiet.system_wallet_id, quiet.wallet_ids[0], 3)])

    with scratch.begin() as conn:
        claim_plan = conn.execute(
            text("EXPLAIN (ANALYZE, COSTS OFF, TIMING OFF, FORMAT JSON) " + str(claim_sql())),
            {"limit": 1000, "share": 100},
        ).scalar_one()[0]["Plan"]
    with scratch.connect() as conn:
        probe_plans = [
            conn.exec_driver_sql(
                "EXPLAIN (ANALYZE, COSTS OFF, TIMING OFF, FORMAT JSON) " + sql, {"after": 60}
            ).scalar_one()[0]["Plan"]
            for sql in (OLDEST_PENDING_AGE_SQL.replace("%", "%%"), PENDING_WAITING)
        ]

    scans = [scan for scan in plan_scans(claim_plan) if scan[1] != "None"]  # not the CTEs
    assert {where for _, where, _ in scans} == {"ix_transactions_pending_org_seq"}, scans
    assert sum(rows for _, _, rows in scans) <= 200, scans  # 101 claimed and the skip scan
    for plan in probe_plans:
        scans = plan_scans(plan)
        assert ("Index Scan", "ix_transactions_pending_seq", 1) in scans, scans
        assert all(rows <= 1 for _, _, rows in scans), scans


def test_lookups_by_key_skip_the_pending_indexes_after_a_quiet_analyze(scratch: Engine) -> None:
    """After statistics that saw no PENDING row, the statements that find transfers by key
    and test that they still wait (a batch locking its transfers again, the claim of atomic
    batches' members, a cancel) must use the key, not walk a PENDING partial index through
    the whole surge and test each entry."""
    from ledger_core.persistence.transfers.changes import CANCEL
    from ledger_core.persistence.transfers.claim import CLAIM_GROUP_MEMBERS
    from ledger_core.persistence.transfers.posting import RELOCK

    surging = create_book(scratch, 1)
    _analyze_a_settled_past(scratch, 20_000)
    with scratch.begin() as conn:
        _flood(conn, surging, 30_000)
        ids = (
            conn.execute(
                text(
                    "SELECT id FROM transactions WHERE organization_id = :o ORDER BY seq LIMIT 1000"
                ),
                {"o": surging.organization_id},
            )
            .scalars()
            .all()
        )

    explain = "EXPLAIN (ANALYZE, COSTS OFF, TIMING OFF, FORMAT JSON) "
    with scratch.connect() as conn, conn.begin():
        plans = [
            conn.execute(text(explain + str(statement)), params).scalar_one()[0]["Plan"]
            for statement, params in (
                (RELOCK, {"ids": list(ids)}),
                (CLAIM_GROUP_MEMBERS, {"groups": list(ids[:10])}),
                (CANCEL, {"id": ids[-1], "group": None}),
            )
        ]
        conn.rollback()

    for plan in plans:
        scans = [scan for scan in plan_scans(plan) if scan[1] != "None"]
        assert not any("pending" in where for _, where, _ in scans), scans
        assert all(rows <= len(ids) for _, _, rows in scans), scans


def _flood_actions(conn: Connection, book: Book, count: int, status: str) -> list[object]:
    """`count` voids asked of one transfer of `book`, in `status` (decided ones stand for
    the past), and their ids."""
    _flood(conn, book, 1, "COMPLETED")
    return list(
        conn.execute(
            text("""
            INSERT INTO hold_actions (organization_id, transaction_id, action, idempotency_key,
                request_hash, status, decided_at)
            SELECT :o, t.id, 'VOID', :status || '-' || n, 'h', :status,
                   CASE WHEN :status <> 'PENDING' THEN now() END
            FROM generate_series(1, :count) AS n
            CROSS JOIN (SELECT id FROM transactions WHERE organization_id = :o LIMIT 1) AS t
            ORDER BY n
            RETURNING id
            """),
            {"o": book.organization_id, "count": count, "status": status},
        ).scalars()
    )


def test_deciding_claimed_voids_and_captures_uses_their_keys_after_a_quiet_analyze(
    scratch: Engine,
) -> None:
    """After statistics that saw no waiting capture or void, a batch's decision of the ones
    it claimed finds them by key, not by walking the PENDING index through the backlog."""
    from ledger_core.persistence.transfers.hold_actions import FINISH_ACTIONS

    past, surging = create_book(scratch, 1), create_book(scratch, 1)
    with scratch.begin() as conn:
        conn.execute(text("ALTER TABLE hold_actions SET (autovacuum_enabled = off)"))
        _flood_actions(conn, past, 20_000, "FAILED")
    with scratch.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        conn.execute(text("VACUUM ANALYZE hold_actions"))
    with scratch.begin() as conn:
        ids = _flood_actions(conn, surging, 30_000, "PENDING")[:50]

    explain = "EXPLAIN (ANALYZE, COSTS OFF, TIMING OFF, FORMAT JSON) "
    params = {
        "ids": ids,
        "statuses": ["FAILED"] * len(ids),
        "codes": ["hold_not_open"] * len(ids),
        "messages": ["not open"] * len(ids),
    }
    with scratch.connect() as conn, conn.begin():
        plan = conn.execute(text(explain + str(FINISH_ACTIONS)), params).scalar_one()[0]["Plan"]
        conn.rollback()

    scans = [scan for scan in plan_scans(plan) if scan[1] != "None"]
    assert not any("pending" in where for _, where, _ in scans), scans
    assert all(rows <= len(ids) for _, _, rows in scans), scans
