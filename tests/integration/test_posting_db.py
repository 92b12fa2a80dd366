"""The posting path against real PostgreSQL: batches, concurrency, exactly-once."""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

import pytest
from sqlalchemy import Engine, text

from bench.profile_stats import multixacts_used
from ledger_core.persistence.transfers.batch_locks import (
    FIRST_SLOT_PATIENCE_MS,
    POSTING_LOCK_CLASS,
    take_posting_slot,
)
from ledger_core.persistence.transfers.posting import BatchResult, post_batch
from ledger_core.services import posting
from tests.support.ledger import create_book, insert_intents
from tests.support.ledger_checks import wait_until

HELD_SLOTS = """
    SELECT array_agg(objid ORDER BY objid) FROM pg_locks
    WHERE locktype = 'advisory' AND classid = :c AND pid = pg_backend_pid() AND granted
"""
"""The posting slots the current session holds."""
HOLD_FIRST_SLOT = "SELECT pg_advisory_xact_lock(:c, 0)"
"""Takes posting slot 0 until the transaction ends, as a posting batch does."""


def _drain(engine: Engine, limit: int) -> int:
    posted = 0
    while True:
        with engine.begin() as conn:
            result = post_batch(conn, limit)
        posted += result.claimed
        if result.claimed == 0 and not result.more:  # `more`: left for a batch holding wallets
            return posted


def _ledger_state(engine: Engine, org: object) -> dict[str, int]:
    with engine.connect() as conn:
        return dict(
            conn.execute(
                text(
                    "SELECT"
                    " (SELECT coalesce(sum(balance), 0) FROM wallets WHERE organization_id = :o) AS zero_sum,"
                    " (SELECT count(*) FROM wallets WHERE organization_id = :o AND type <> 'SYSTEM'"
                    "   AND balance < 0) AS overdrawn,"
                    " (SELECT count(*) FROM wallets w WHERE organization_id = :o AND balance <>"
                    "   (SELECT coalesce(sum(CASE direction WHEN 'CREDIT' THEN amount ELSE -amount END), 0)"
                    "    FROM ledger_entries e WHERE e.wallet_id = w.id)) AS unexplained,"
                    " (SELECT count(*) FROM transactions WHERE organization_id = :o AND status = 'PENDING')"
                    "   AS pending,"
                    " (SELECT count(*) FROM ledger_entries e JOIN transactions t ON t.id = e.transaction_id"
                    "   WHERE t.organization_id = :o) AS entries,"
                    " (SELECT count(*) FROM transactions WHERE organization_id = :o AND status = 'COMPLETED')"
                    "   AS completed,"
                    " (SELECT count(*) FROM outbox WHERE organization_id = :o) AS events,"
                    " (SELECT count(*) FROM transactions WHERE organization_id = :o) AS transfers"
                ),
                {"o": org},
            )
            .one()
            ._mapping
        )


def test_a_batch_posts_in_order_with_running_balances(engine: Engine) -> None:
    book = create_book(engine, 2)
    a, b = book.wallet_ids
    with engine.begin() as conn:
        insert_intents(
            conn, book, [(book.system_wallet_id, a, 100), (a, b, 70), (a, b, 70), (b, a, 5)]
        )
    assert _drain(engine, 1000) >= 4  # and whatever earlier tests of this session left waiting
    with engine.connect() as conn:
        statuses = conn.execute(
            text(
                "SELECT status, failure_code FROM transactions WHERE organization_id = :o ORDER BY seq"
            ),
            {"o": book.organization_id},
        ).all()
        chain = (
            conn.execute(
                text("SELECT balance_after FROM ledger_entries WHERE wallet_id = :w ORDER BY id"),
                {"w": a},
            )
            .scalars()
            .all()
        )
    assert [tuple(s) for s in statuses] == [
        ("COMPLETED", None),
        ("COMPLETED", None),
        ("FAILED", "insufficient_funds"),
        ("COMPLETED", None),
    ]
    assert chain == [100, 30, 35]
    state = _ledger_state(engine, book.organization_id)
    assert state["zero_sum"] == 0 and state["unexplained"] == 0 and state["events"] == 4


@pytest.mark.parametrize("limit", [1, 7, 500])
def test_concurrent_workers_on_hot_wallets_post_everything_once(engine: Engine, limit: int) -> None:
    """Four workers draining one queue of transfers over three hot wallets never overdraw."""
    rng = random.Random(limit)
    book = create_book(engine, 3)
    with engine.begin() as conn:
        insert_intents(conn, book, [(book.system_wallet_id, w, 1_000) for w in book.wallet_ids])
        moves = []
        for _ in range(600):
            src, dst = rng.sample(book.wallet_ids, 2)
            moves.append((src, dst, rng.randint(1, 400)))
        insert_intents(conn, book, moves)
    errors: list[BaseException] = []

    def worker() -> None:
        try:
            _drain(engine, limit)
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=worker) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    state = _ledger_state(engine, book.organization_id)
    assert state["pending"] == 0
    assert state["overdrawn"] == 0
    assert state["unexplained"] == 0
    assert state["zero_sum"] == 0
    assert state["entries"] == 2 * state["completed"]
    assert state["events"] == state["transfers"]


def test_final_transactions_cannot_change(engine: Engine) -> None:
    book = create_book(engine, 1)
    with engine.begin() as conn:
        (tid,) = insert_intents(conn, book, [(book.system_wallet_id, book.wallet_ids[0], 10)])
    _drain(engine, 10)
    with engine.connect() as conn, pytest.raises(Exception, match="final"):
        conn.execute(text("UPDATE transactions SET status = 'PENDING' WHERE id = :id"), {"id": tid})


@contextmanager
def _first_slot_held(engine: Engine) -> Iterator[None]:
    """Posting slot 0 held by another transaction, as by a batch posting, until the end."""
    with engine.begin() as holder:
        holder.execute(text(HOLD_FIRST_SLOT), {"c": POSTING_LOCK_CLASS})
        yield


def test_a_batch_waits_for_a_free_posting_slot(engine: Engine) -> None:
    """With one slot, a batch posts only after the slot's holder commits."""
    book = create_book(engine, 2)
    a, b = book.wallet_ids
    with engine.begin() as conn:
        insert_intents(conn, book, [(book.system_wallet_id, a, 100), (a, b, 40)])
    posted = threading.Event()

    def post() -> None:
        with engine.begin() as conn:
            post_batch(conn, 1000, slots=1)
        posted.set()

    with _first_slot_held(engine):
        worker = threading.Thread(target=post)
        worker.start()
        assert not posted.wait(0.5)  # blocked behind the slot's holder
        assert _ledger_state(engine, book.organization_id)["pending"] == 2
    worker.join(10)
    assert posted.is_set()
    assert _ledger_state(engine, book.organization_id)["completed"] == 2


def _one_transfer_each(engine: Engine, organizations: int) -> None:
    """A PENDING deposit of each of `organizations` new organizations."""
    for _ in range(organizations):
        book = create_book(engine, 1)
        with engine.begin() as conn:
            insert_intents(conn, book, [(book.system_wallet_id, book.wallet_ids[0], 100)])


def _post_in_a_thread(engine: Engine, seen: dict[str, object]) -> threading.Thread:
    """A batch (`spread` off, 2 slots) posting in a thread, recording what it claimed, how
    long it took, the slots it held and its `lock_timeout` after taking one."""

    def post() -> None:
        with engine.begin() as conn:
            conn.execute(text("SET LOCAL lock_timeout = '7s'"))
            started = time.monotonic()
            seen["claimed"] = post_batch(conn, 1000, slots=2, spread=False).claimed
            seen["waited"] = time.monotonic() - started
            seen["slots"] = conn.execute(text(HELD_SLOTS), {"c": POSTING_LOCK_CLASS}).scalar_one()
            seen["lock_timeout"] = conn.execute(text("SHOW lock_timeout")).scalar_one()

    worker = threading.Thread(target=post)
    worker.start()
    return worker


def test_a_lone_tenants_batch_waits_for_the_first_slot_while_another_is_free(
    engine: Engine,
) -> None:
    """Without `spread`, while only one organization has transfers waiting, a batch waits
    for slot 0 even though slot 1 of 2 is free: a trickle posts in one slot, batch after
    batch, each claiming what arrived during the one before."""
    _one_transfer_each(engine, 1)
    seen: dict[str, object] = {}
    with _first_slot_held(engine):
        worker = _post_in_a_thread(engine, seen)
        worker.join(0.5)
        assert worker.is_alive()  # slot 1 is free, yet the batch waits for slot 0
    worker.join(10)
    assert seen["claimed"] == 1 and seen["slots"] == [0] and seen["lock_timeout"] == "7s"


def test_a_second_lone_batch_leaves_the_first_slot_to_the_one_queued_before_it(
    engine: Engine,
) -> None:
    """While a batch already queues for the busy slot 0 and only one organization's
    transfers wait, another kicked batch gives its thread back at once (nothing claimed,
    nothing said to be waiting): the queued one claims them all once the slot frees."""
    _one_transfer_each(engine, 1)
    seen: dict[str, object] = {}
    with _first_slot_held(engine):
        queued = _post_in_a_thread(engine, seen)
        wait_until(lambda: _waiting_for_first_slot(engine) == 1, 10, "a batch queued")
        started = time.monotonic()
        with engine.begin() as conn:
            conn.execute(text("SET LOCAL lock_timeout = '2s'"))  # fails, should it queue too
            second = post_batch(conn, 1000, slots=2, spread=False)
        assert time.monotonic() - started < 1.0
        assert (second.claimed, second.more) == (0, False)
        assert queued.is_alive()
    queued.join(10)
    assert seen["claimed"] == 1 and seen["slots"] == [0]


def _waiting_for_first_slot(engine: Engine) -> int:
    with engine.connect() as conn:
        return int(
            conn.execute(
                text(
                    "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND NOT granted"
                    " AND CAST(classid AS bigint) = :c AND objid = 0"
                ),
                {"c": POSTING_LOCK_CLASS},
            ).scalar_one()
        )


def test_another_tenants_transfer_waits_only_a_moment_behind_a_long_batch(
    engine: Engine,
) -> None:
    """While transfers of several organizations wait, a batch waits for a busy slot 0 for
    `FIRST_SLOT_PATIENCE_MS`, then posts in slot 1 while slot 0 is still held (the long
    batch of another tenant's backlog), its `lock_timeout` as it was."""
    _one_transfer_each(engine, 2)
    seen: dict[str, object] = {}
    with _first_slot_held(engine):
        worker = _post_in_a_thread(engine, seen)
        worker.join(10)
        assert not worker.is_alive()  # posted while slot 0 is still held
    assert seen["claimed"] == 2 and seen["slots"] == [1] and seen["lock_timeout"] == "7s"
    assert float(seen["waited"]) >= FIRST_SLOT_PATIENCE_MS / 1000  # type: ignore[arg-type]


def test_a_batch_takes_the_first_slot_once_it_frees_within_the_patience(engine: Engine) -> None:
    """Slot 0 ends its batch within the patience: the waiting batch takes slot 0, not 1."""
    _one_transfer_each(engine, 2)
    seen: dict[str, object] = {}
    holder = engine.connect()
    holder.begin()
    holder.execute(text(HOLD_FIRST_SLOT), {"c": POSTING_LOCK_CLASS})
    threading.Timer(FIRST_SLOT_PATIENCE_MS / 4000, holder.rollback).start()
    _post_in_a_thread(engine, seen).join(10)
    holder.close()
    assert seen["claimed"] == 2 and seen["slots"] == [0] and seen["lock_timeout"] == "7s"


def test_a_worker_spreads_over_the_slots_only_behind_a_backlog(
    engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A worker's first batch waits for the first slot; once a batch leaves transfers
    waiting beyond its claim, the next ones may take any free slot."""
    book = create_book(engine, 1)
    spreads: list[bool] = []
    post_one_batch = posting.post_one_batch

    def recorded(*args: object, spread: bool = True, **kwargs: object) -> BatchResult:
        spreads.append(spread)
        return post_one_batch(*args, spread=spread, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(posting, "post_one_batch", recorded)
    limits = posting.PostingLimits(batch_size=2, slots=2)
    with engine.begin() as conn:
        insert_intents(conn, book, [(book.system_wallet_id, book.wallet_ids[0], 1)] * 5)

    assert posting.post_pending(engine, limits) is False
    assert spreads == [False, True, True]  # claims of 2 (full), 2 (full), then 1
    assert _ledger_state(engine, book.organization_id)["completed"] == 5

    spreads.clear()
    with engine.begin() as conn:
        insert_intents(conn, book, [(book.system_wallet_id, book.wallet_ids[0], 1)])
    assert posting.post_pending(engine, limits) is False
    assert spreads == [False]


def test_a_batch_takes_the_one_free_posting_slot_and_no_other(engine: Engine) -> None:
    """While other batches hold slots 0 and 2 of 3, a batch takes slot 1 at once, and only
    that one, whichever slot it tries first."""
    held = "SELECT pg_advisory_xact_lock(:c, 0), pg_advisory_xact_lock(:c, 2)"
    with engine.begin() as holder:
        holder.execute(text(held), {"c": POSTING_LOCK_CLASS})
        for _ in range(6):
            with engine.begin() as conn:
                conn.execute(text("SET LOCAL lock_timeout = '2s'"))
                take_posting_slot(conn, 3)
                assert conn.execute(text(HELD_SLOTS), {"c": POSTING_LOCK_CLASS}).scalar_one() == [1]


MULTIXACT_XMAX = 0x1000
"""`HEAP_XMAX_IS_MULTI` of a row version's `t_infomask`."""
OLD_VERSIONS = text("""
    WITH ours AS (SELECT ctid FROM transactions WHERE id = ANY(CAST(:ids AS uuid[])))
    SELECT v.t_infomask FROM
        generate_series(0, CAST(pg_relation_size('transactions') / 8192 AS int) - 1) AS p,
        heap_page_items(get_raw_page('transactions', p)) AS v
    WHERE v.t_ctid IN (SELECT ctid FROM ours) AND v.t_ctid <> format('(%s,%s)', p, v.lp)::tid
""")
"""The earlier row versions of the given transfers: those whose `t_ctid` points to the
current one from another place."""


def test_a_posted_transfers_old_row_version_is_plainly_dead(engine: Engine) -> None:
    """The claim's lock and the final update of a transfer come from one subtransaction, so
    the PENDING row version it leaves has a plain `xmax`. With a lock by one subtransaction
    and an update by another, PostgreSQL gives it a multixact instead and cannot judge it
    dead from an index scan: every claim until the next vacuum then reads the row behind
    each such PENDING index entry that page pruning did not reach (BENCHMARKS.md: 13-20 ms
    a claim after 233,000 transfers on a server without autovacuum)."""
    with engine.begin() as conn:
        available = conn.scalar(
            text("SELECT count(*) FROM pg_available_extensions WHERE name = 'pageinspect'")
        )
        if not available:
            pytest.skip("this PostgreSQL has no pageinspect to read row versions with")
        conn.execute(text("CREATE EXTENSION IF NOT EXISTS pageinspect"))
    book = create_book(engine, 2)
    a, b = book.wallet_ids
    with engine.begin() as conn:
        ids = insert_intents(conn, book, [(book.system_wallet_id, a, 5), (a, b, 1)] * 60)
    with engine.connect().execution_options(isolation_level="REPEATABLE READ") as holder:
        holder.begin()
        holder.execute(text("SELECT 1"))  # a snapshot that keeps the old versions from pruning
        assert _drain(engine, 25) == 120
        with engine.connect() as conn:
            old = conn.execute(OLD_VERSIONS, {"ids": [str(i) for i in ids]}).scalars().all()
        holder.rollback()

    assert len(old) == 120
    assert [mask for mask in old if mask & MULTIXACT_XMAX] == []


def test_posting_batches_hand_out_no_multixacts(engine: Engine) -> None:
    """The same promise read from the server's MultiXact counter, which needs no extension:
    a batch that locked in one subtransaction and wrote in another took one multixact. The
    counter is server-wide and tests running beside this one may move it (a few dozen a
    second at most), so each round posts 99 one-transfer batches and the least of three
    rounds must stay under half that."""
    url = engine.url.render_as_string(hide_password=False)
    book = create_book(engine, 3)
    a, b, c = book.wallet_ids
    rounds = []
    for _ in range(3):
        with engine.begin() as conn:
            insert_intents(conn, book, [(book.system_wallet_id, a, 9), (a, b, 1), (b, c, 1)] * 33)
        before = multixacts_used(url)
        assert _drain(engine, 1) == 99
        rounds.append(multixacts_used(url) - before)
    assert min(rounds) < 50, rounds
