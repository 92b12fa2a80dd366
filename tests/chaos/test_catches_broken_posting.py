"""The checks have teeth: run against deliberately broken posting code, they fail.

Threads post many transfers off one hot wallet with `post_batch` against a real
PostgreSQL, as concurrent workers do. With the real code, the invariant checker and the
double-posting check find nothing. Each mutation removes one of the defences of
`ledger_core.persistence.transfers.posting` (the wallet row locks; the claim's row locks and the
`status = 'PENDING'` guard; and, last line, the final-state trigger) and the same checks
must then report what went wrong. Without any guard against reposting, two workers are
made to claim one batch at the same moment (`claim_together`), so the damage is exactly
one double posting, every run. Each run gets a database of its own, so the damage stays
there.
"""

from __future__ import annotations

import contextlib
import random
import re
import threading
import time
from collections.abc import Iterator
from typing import Any
from uuid import UUID

import coverage
import pytest
from sqlalchemy import Engine, text

import ledger_core.persistence.transfers.batch_locks as batch_locks
import ledger_core.persistence.transfers.claim as claim
import ledger_core.persistence.transfers.ledger_writes as ledger_writes
import ledger_core.persistence.transfers.posting as posting
from ledger_core.persistence.reconciliation.invariants import Violation, check_invariants
from tests.support.databases import fresh_engine
from tests.support.ledger import Book, create_book, insert_intents
from tests.support.ledger_checks import double_postings, pending_count

THREADS = 8
BATCH = 4
TRANSFERS = 240
ROW_LOCK = r"FOR (NO KEY )?UPDATE( SKIP LOCKED)?"
PENDING_GUARD = r"AND t\.status = v\.claimed_as"
LOST_UPDATE_ROUNDS = 3
"""A lost update needs two batches to read one wallet before either commits: on a loaded
machine one round of the workload can go by without that, three in a row do not."""
OLDER_FIRST = r"(?<=SELECT transfer_seq, id FROM held_wallets WHERE id IS )NOT "
"""Turns the list of wallets older transfers hold into the list of its nulls: nothing."""


@pytest.fixture
def scratch(service_urls: tuple[str, str]) -> Iterator[Engine]:
    """A database of this test's own, dropped afterwards."""
    with fresh_engine(service_urls[0], "vaultcraft_mutant", THREADS, max_overflow=2) as engine:
        yield engine


@pytest.fixture(autouse=True)
def untraced() -> Iterator[None]:
    """Pause coverage (on in `make test`) for these tests: its tracer slows the threads so
    much that the interleavings a mutation needs become rare and the checks see other
    damage than the one asserted. Measuring deliberately broken code has no value anyway."""
    measuring = coverage.Coverage.current()
    if measuring is not None:
        measuring.stop()
    yield
    if measuring is not None:
        measuring.start()


@pytest.fixture(autouse=True)
def slow_planning(monkeypatch: pytest.MonkeyPatch) -> None:
    """Hold each batch's locks a few milliseconds longer, so races happen on every run."""
    plan = posting.plan_postings

    def planned_slowly(*args: Any) -> Any:
        time.sleep(0.003)
        return plan(*args)

    monkeypatch.setattr(posting, "plan_postings", planned_slowly)


def hot_wallet_book(engine: Engine) -> Book:
    """A hot wallet holding 100.00, and many transfers off it waiting to be posted."""
    book = create_book(engine, wallets=5)
    hot, sinks = book.wallet_ids[0], book.wallet_ids[1:]
    with engine.begin() as conn:
        insert_intents(conn, book, [(book.system_wallet_id, hot, 100_00)])
    with engine.begin() as conn:
        assert posting.post_batch(conn, 10).completed == 1
    rng = random.Random(5)
    moves = [(hot, rng.choice(sinks), rng.randint(1, 30) * 100) for _ in range(TRANSFERS)]
    with engine.begin() as conn:
        insert_intents(conn, book, moves)
    return book


def post_concurrently(engine: Engine, timeout_s: float = 60) -> int:
    """Workers post until nothing is PENDING; a failed batch is retried. Returns failures."""
    failures = 0
    lock = threading.Lock()
    deadline = time.monotonic() + timeout_s

    def worker() -> None:
        nonlocal failures
        while time.monotonic() < deadline:
            try:
                with engine.begin() as conn:
                    claimed = posting.post_batch(conn, BATCH).claimed
            except Exception:
                with lock:
                    failures += 1
                continue
            if claimed == 0 and pending_count(engine) == 0:
                return

    threads = [threading.Thread(target=worker) for _ in range(THREADS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return failures


def verdict(engine: Engine) -> tuple[list[Violation], list[str]]:
    with engine.connect() as conn:
        return check_invariants(conn, require_final=True), double_postings(conn)


POSTING_MODULES = (claim, ledger_writes, batch_locks, posting)


def mutate(monkeypatch: pytest.MonkeyPatch, name: str, remove: str) -> None:
    """Replace the statement `<name>` by itself without what `remove` matches, in every
    posting module that holds it (a module that imported it holds its own reference)."""
    holders = [m for m in POSTING_MODULES if hasattr(m, name)]
    assert holders, f"no posting module holds {name}; update this mutation"
    original = getattr(holders[0], name)
    sql = str(original)
    mutated = re.sub(remove, "", sql)
    assert mutated != sql, f"{name} no longer matches {remove!r}; update this mutation"
    for module in holders:
        monkeypatch.setattr(module, name, mutated if isinstance(original, str) else text(mutated))


def test_the_real_posting_code_passes_every_check(scratch: Engine) -> None:
    book = hot_wallet_book(scratch)
    assert post_concurrently(scratch) == 0
    violations, doubled = verdict(scratch)
    assert violations == [] and doubled == []
    with scratch.connect() as conn:
        statuses = dict(
            conn.execute(
                text(
                    "SELECT status, count(*) FROM transactions WHERE organization_id = :o"
                    " GROUP BY status"
                ),
                {"o": book.organization_id},
            ).all()
        )
    assert set(statuses) == {"COMPLETED", "FAILED"}


def test_without_wallet_locks_the_checker_sees_lost_updates(
    scratch: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Both wallet locks go, and so does the wait for older transfers on a wallet, which alone
    lets one batch at a time post off the hot wallet."""
    mutate(monkeypatch, "LOCK_WALLETS", ROW_LOCK)
    mutate(monkeypatch, "LOCK_FREE_WALLETS", ROW_LOCK)
    mutate(monkeypatch, "HELD_WALLETS", OLDER_FIRST)
    kinds: set[str] = set()
    for _ in range(LOST_UPDATE_ROUNDS):
        hot_wallet_book(scratch)
        post_concurrently(scratch)
        kinds = {v.kind for v in verdict(scratch)[0]}
        if kinds & {"balance_mismatch", "balance_after_wrong", "overdraft_in_history"}:
            return
    raise AssertionError(f"no lost update in {LOST_UPDATE_ROUNDS} rounds: {kinds}")


def test_without_claim_locks_and_pending_guard_the_final_state_trigger_still_refuses(
    scratch: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Defence in depth: two workers post the same transfers, the database refuses the second.

    A refused write rolls its batch back to the claim, which then finds those transfers no
    longer PENDING and leaves them to the batch that posted them."""
    hot_wallet_book(scratch)
    mutate(monkeypatch, "CLAIM", ROW_LOCK)
    mutate(monkeypatch, "WRITE_BATCH", PENDING_GUARD)
    refused = count_refused_writes(monkeypatch)
    failures = post_concurrently(scratch)
    assert refused["writes"] > 0, failures  # writes that reposted a final transfer
    assert verdict(scratch) == ([], [])


def count_refused_writes(monkeypatch: pytest.MonkeyPatch) -> dict[str, int]:
    """Count the batch writes the database refuses (`post_claimed` raising)."""
    refused = {"writes": 0}
    post_claimed = posting.post_claimed

    def counted(*args: Any) -> Any:
        try:
            return post_claimed(*args)
        except Exception:
            refused["writes"] += 1
            raise

    monkeypatch.setattr(posting, "post_claimed", counted)
    return refused


def claim_together(engine: Engine, monkeypatch: pytest.MonkeyPatch) -> dict[str, int]:
    """Two workers claim at the same time, and the second posts once the first committed;
    returns how many transfers each completed.

    The first claims, then the second, and both claim before either locks a wallet (a
    barrier after the claims); the second then waits for the first to commit, so should it
    hold the same batch it finds the wallets free and the funds there, and writes its
    posting in full rather than failing or stepping back for busy wallets. The claim turn,
    which would have the second claim wait for the first to lock its wallets, is taken
    away: the row locks alone must hold.
    """
    claim_batch = posting.claim_batch
    both_claimed = threading.Barrier(2, timeout=30)
    first_claimed = threading.Event()
    first_committed = threading.Event()
    errors: list[BaseException] = []
    completed: dict[str, int] = {}

    def claim_and_meet(conn: Any, limit: int, *args: Any) -> Any:
        second = threading.current_thread().name == "second"
        if second:
            assert first_claimed.wait(timeout=30), "the first claim never ran"
        claimed = claim_batch(conn, limit, *args)
        if not second:
            first_claimed.set()
        both_claimed.wait()
        if second:
            assert first_committed.wait(timeout=30), "the first posting never committed"
        return claimed

    def post(name: str) -> None:
        try:
            with engine.begin() as conn:
                completed[name] = posting.post_batch(conn, BATCH).completed
        except BaseException as exc:  # re-raised in the test's thread
            errors.append(exc)
            both_claimed.abort()
        finally:
            if name == "first":
                first_claimed.set()  # so that a first that failed before claiming frees the second
                first_committed.set()

    monkeypatch.setattr(posting, "claim_batch", claim_and_meet)
    monkeypatch.setattr(posting, "claim_turn", lambda conn: contextlib.nullcontext())
    threads = [
        threading.Thread(target=post, args=(name,), name=name) for name in ("first", "second")
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    if errors:
        raise errors[0]
    return completed


def one_batch_off_a_hot_wallet(engine: Engine) -> tuple[Book, list[UUID]]:
    """A wallet holding 100.00 and one batch of transfers off it (10.00 to each other
    wallet) waiting: enough funds to post the batch twice."""
    book = create_book(engine, wallets=BATCH + 1)
    hot, sinks = book.wallet_ids[0], book.wallet_ids[1:]
    with engine.begin() as conn:
        insert_intents(conn, book, [(book.system_wallet_id, hot, 100_00)])
    with engine.begin() as conn:
        assert posting.post_batch(conn, 10).completed == 1
    with engine.begin() as conn:
        ids = insert_intents(conn, book, [(hot, sink, 10_00) for sink in sinks])
    return book, ids


def test_the_real_posting_code_posts_a_batch_claimed_at_once_only_once(
    scratch: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The interleaving of the next test, against the real code: the second claim skips the
    rows the first holds, and the batch is posted once."""
    one_batch_off_a_hot_wallet(scratch)
    assert claim_together(scratch, monkeypatch) == {"first": BATCH, "second": 0}
    assert verdict(scratch) == ([], [])


def test_without_any_guard_against_reposting_the_checks_see_double_postings(
    scratch: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With nothing to stop it, a batch claimed by two workers is posted twice: each of its
    transfers has two entries on each of its wallets, and two events."""
    book, ids = one_batch_off_a_hot_wallet(scratch)
    hot, sinks = book.wallet_ids[0], book.wallet_ids[1:]
    with scratch.begin() as conn:
        conn.execute(text("ALTER TABLE transactions DISABLE TRIGGER transactions_final_is_final"))
    mutate(monkeypatch, "CLAIM", ROW_LOCK)
    mutate(monkeypatch, "WRITE_BATCH", PENDING_GUARD)
    assert claim_together(scratch, monkeypatch) == {"first": BATCH, "second": BATCH}
    violations, doubled = verdict(scratch)
    assert {(v.kind, v.transaction_id, v.wallet_id, v.actual) for v in violations} == {
        ("posted_twice", tx, wallet, 2)
        for tx, sink in zip(ids, sinks, strict=True)
        for wallet in (hot, sink)
    }, violations
    org = book.organization_id
    assert sorted(doubled) == sorted(
        [f"transaction {tx} has 4 entries, expected 2" for tx in ids]
        + [
            f"transaction {tx} (COMPLETED) has 2 transfer events for organization {org}"
            for tx in ids
        ]
    )
