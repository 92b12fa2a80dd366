"""The scheduler's jobs, their one-runner-at-a-time guards, and its lifecycle."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from itertools import pairwise
from pathlib import Path

import psycopg
import pytest
from dramatiq.brokers.redis import RedisBroker
from prometheus_client import REGISTRY
from sqlalchemy import Engine, create_engine, text

from runtime.settings import to_psycopg_url
from tests.reconciliation.books import Books
from tests.reconciliation.ledgers import Ledger, build_ledger
from tests.reconciliation.queues import actors_queued
from tests.support.audit import seal_everything
from tests.support.ledger_checks import wait_until
from workers.job_guard import JobGuard, lock_key
from workers.scheduler import warn_without_autovacuum

ROOT = Path(__file__).resolve().parents[2]


def wait_for(condition: Callable[[], bool], timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.1)


@pytest.fixture
def ledger(books: Books) -> Ledger:
    return build_ledger(books)


@pytest.fixture
def guards(fresh_url: str) -> Iterator[list[JobGuard]]:
    made = [JobGuard(to_psycopg_url(fresh_url), "rescue-pending") for _ in range(2)]
    yield made
    for guard in made:
        guard.release()


def test_only_one_guard_holds_a_job_until_it_lets_go(guards: list[JobGuard]) -> None:
    first, second = guards

    assert first.try_acquire()
    assert not second.try_acquire()
    assert first.try_acquire()  # the holder keeps running the job, tick after tick

    first.release()
    assert second.try_acquire()
    assert not first.try_acquire()


def test_a_job_passes_to_another_scheduler_when_its_holder_dies(
    guards: list[JobGuard], fresh_url: str
) -> None:
    first, second = guards
    assert first.try_acquire()
    assert not second.try_acquire()

    # When the holder's session ends abruptly, as when its process is killed
    with psycopg.connect(to_psycopg_url(fresh_url), autocommit=True) as admin:
        admin.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_locks"
            " WHERE locktype = 'advisory' AND granted AND database = ("
            "   SELECT oid FROM pg_database WHERE datname = current_database())"
        )

    # Then the other scheduler takes the job at its next tick, and the old holder notices
    wait_for(second.try_acquire)
    assert not first.try_acquire()


def test_two_schedulers_never_run_the_same_job_at_once(fresh_url: str) -> None:
    # Given two schedulers' threads ticking the same job, each sometimes letting it go
    runs: list[tuple[float, float, int]] = []
    deadline = time.monotonic() + 2.0

    def scheduler(number: int) -> None:
        guard, rng = JobGuard(to_psycopg_url(fresh_url), "settle"), random.Random(number)
        try:
            while time.monotonic() < deadline:
                if guard.try_acquire():
                    started = time.monotonic()
                    time.sleep(0.005)
                    runs.append((started, time.monotonic(), number))
                    if rng.random() < 0.3:
                        guard.release()
                time.sleep(0.001)
        finally:
            guard.release()

    threads = [threading.Thread(target=scheduler, args=(n,)) for n in (1, 2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()

    # Then both ran the job at some point, and no two runs overlapped
    assert {number for _, _, number in runs} == {1, 2}
    ordered = sorted(runs)
    for (_, end, _), (start, _, _) in pairwise(ordered):
        assert end <= start


def test_rescue_kicks_posting_only_for_transfers_past_the_window(
    db: Engine, books: Books, ledger: Ledger, broker: RedisBroker, redis_url: str
) -> None:
    from workers.scheduler import rescue_pending

    rescued_before = REGISTRY.get_sample_value("vaultcraft_pending_rescued_total") or 0.0
    assert not rescue_pending(db, broker, after_s=30)  # the ledger's PENDING one is young
    assert actors_queued(redis_url, "posting") == []

    books.unposted(ledger.alice, ledger.bob, 5, "PENDING", age_s=45)
    assert rescue_pending(db, broker, after_s=30)

    assert actors_queued(redis_url, "posting") == ["post_pending"]
    assert REGISTRY.get_sample_value("vaultcraft_pending_rescued_total") == rescued_before + 1


def test_gauges_show_pending_transfers_and_the_outbox_backlog(db: Engine, ledger: Ledger) -> None:
    from workers.scheduler import refresh_gauges

    with db.begin() as conn:
        conn.execute(
            text(
                "INSERT INTO outbox (organization_id, type, data, created_at)"
                " VALUES (:org, 'test', '{}', now() - interval '90 seconds'),"
                "        (:org, 'test', '{}', now())"
            ),
            {"org": ledger.acme},
        )

    refresh_gauges(db)

    assert REGISTRY.get_sample_value("vaultcraft_pending_transfers") == 1
    assert REGISTRY.get_sample_value("vaultcraft_outbox_backlog") == 2
    assert 89 <= (REGISTRY.get_sample_value("vaultcraft_outbox_oldest_unsent_age_seconds") or 0)
    assert (REGISTRY.get_sample_value("vaultcraft_oldest_pending_age_seconds") or 0) < 60


def test_the_pending_gauge_counts_up_to_its_bound(
    db: Engine, ledger: Ledger, books: Books, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A backlog is counted up to `PENDING_COUNTED_UP_TO`, not read row by row past it."""
    from workers import scheduler

    for _ in range(3):
        books.unposted(ledger.alice, ledger.bob, 5, "PENDING")
    scheduler.refresh_gauges(db)
    waiting = REGISTRY.get_sample_value("vaultcraft_pending_transfers") or 0
    assert waiting >= 3

    monkeypatch.setattr(scheduler, "PENDING_COUNTED_UP_TO", 2)
    scheduler.refresh_gauges(db)
    assert REGISTRY.get_sample_value("vaultcraft_pending_transfers") == 2


def test_the_oldest_pending_age_gauge_shows_a_stalled_transfer(
    db: Engine, ledger: Ledger, books: Books
) -> None:
    """A transfer left PENDING for 10 minutes: the gauge shows its age, not the newest one's."""
    from workers.scheduler import refresh_gauges

    books.unposted(ledger.alice, ledger.bob, 5, "PENDING", age_s=600)
    books.unposted(ledger.alice, ledger.bob, 5, "PENDING")

    refresh_gauges(db)

    assert 599 <= (REGISTRY.get_sample_value("vaultcraft_oldest_pending_age_seconds") or 0) < 700


def test_the_unsealed_audit_gauge_shows_records_held_back_by_an_open_transaction(
    db: Engine, ledger: Ledger
) -> None:
    """A transaction left open keeps the sealer from reading past it: the records committed
    after it wait, and the gauge shows how long, until it ends."""
    from workers.audit_sealer import seal_all
    from workers.scheduler import refresh_gauges

    def gauge() -> float:
        refresh_gauges(db)
        return REGISTRY.get_sample_value("vaultcraft_audit_oldest_unsealed_age_seconds") or 0.0

    def sealed_up() -> bool:
        seal_all(db)
        return gauge() == 0

    record = text(
        "INSERT INTO audit_logs (organization_id, action, created_at)"
        " VALUES (:org, 'test.gauge', now() - make_interval(secs => :age))"
    )
    wait_until(sealed_up, 30, "the sealer to catch up")
    with db.connect() as open_transaction:
        open_transaction.begin()
        open_transaction.execute(record, {"org": ledger.acme, "age": 0})
        with db.begin() as conn:
            conn.execute(record, {"org": ledger.acme, "age": 400})
        seal_all(db)
        assert 399 <= gauge() < 500
        open_transaction.commit()
    wait_until(sealed_up, 30, "the records to be sealed once the transaction ended")


def test_the_unsealed_audit_gauge_reads_only_past_the_cursor(db: Engine, ledger: Ledger) -> None:
    """The gauge's query can seek to the cursor in `ix_audit_logs_txid_id`, so its cost does
    not grow with the records sealed before. (At this size a sequential scan is cheaper,
    so the test turns sequential scans off to see the indexed plan's cost.)"""
    from ledger_core.persistence.audit.chain import OLDEST_UNSEALED_AGE_SQL

    with db.begin() as conn:
        conn.execute(
            text(
                "INSERT INTO audit_logs (organization_id, action)"
                " SELECT :org, 'test.many' FROM generate_series(1, 3000)"
            ),
            {"org": ledger.acme},
        )
    seal_everything(db)
    with db.connect() as conn:
        conn.execute(text("ANALYZE audit_logs, audit_seals, audit_seal_cursor"))
        conn.execute(text("SET LOCAL enable_seqscan = off"))
        (plan,) = conn.execute(
            text(f"EXPLAIN (ANALYZE, BUFFERS, FORMAT JSON) {OLDEST_UNSEALED_AGE_SQL}")
        ).scalar_one()
    assert plan["Plan"]["Shared Hit Blocks"] + plan["Plan"].get("Shared Read Blocks", 0) < 30


def start_scheduler(fresh_url: str, redis_url: str, data_dir: Path) -> subprocess.Popen[str]:
    env = dict(os.environ)
    env |= {
        "DATABASE_URL": fresh_url,
        "REDIS_URL": redis_url,
        "VAULTCRAFT_DATA_DIR": str(data_dir),
        "VAULTCRAFT_RESCUE_INTERVAL_S": "1",
        "VAULTCRAFT_PENDING_RESCUE_AFTER_S": "30",
    }
    return subprocess.Popen(
        [sys.executable, "-m", "workers.scheduler"],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def advisory_holders(fresh_url: str, job: str) -> list[int]:
    """Backends holding a job's lock (a bigint key shows as classid:objid in pg_locks)."""
    key = lock_key(job) & 0xFFFFFFFFFFFFFFFF
    with psycopg.connect(to_psycopg_url(fresh_url), autocommit=True) as conn:
        rows = conn.execute(
            "SELECT pid FROM pg_locks WHERE locktype = 'advisory' AND granted AND objsubid = 1"
            " AND classid = %s::bigint::oid AND objid = %s::bigint::oid"
            " AND database = (SELECT oid FROM pg_database WHERE datname = current_database())",
            (key >> 32, key & 0xFFFFFFFF),
        ).fetchall()
    return [r[0] for r in rows]


def test_two_scheduler_processes_share_the_jobs_and_stop_cleanly_on_sigterm(
    books: Books, ledger: Ledger, broker: RedisBroker, fresh_url: str, redis_url: str,
    tmp_path: Path,
) -> None:  # fmt: skip
    # Given a transfer stuck in PENDING and two schedulers running
    books.unposted(ledger.alice, ledger.bob, 5, "PENDING", age_s=120)
    processes = [start_scheduler(fresh_url, redis_url, tmp_path) for _ in range(2)]
    try:
        # Then the stuck transfer is rescued, by one scheduler holding the rescue job
        wait_for(lambda: "post_pending" in actors_queued(redis_url, "posting"))
        wait_for(lambda: len(advisory_holders(fresh_url, "rescue-pending")) == 1)
        for job in ("refresh-gauges", "rescue-pending"):
            assert len(advisory_holders(fresh_url, job)) == 1

        # When both are asked to stop
        for process in processes:
            process.send_signal(signal.SIGTERM)
        outputs = [process.communicate(timeout=30)[0] for process in processes]
    finally:
        for process in processes:
            if process.poll() is None:
                process.kill()

    # Then both exit cleanly and leave no job locked
    assert [p.returncode for p in processes] == [0, 0], outputs
    assert all("Scheduler stopped." in output for output in outputs), outputs
    assert advisory_holders(fresh_url, "rescue-pending") == []


def test_the_scheduler_warns_once_when_the_server_runs_without_autovacuum(
    engine: Engine, caplog: pytest.LogCaptureFixture
) -> None:
    """Whichever way this server is set: a warning exactly when autovacuum is off."""
    with engine.connect() as conn:
        off = conn.scalar(text("SHOW autovacuum")) == "off"
    with caplog.at_level("WARNING", logger="vaultcraft.scheduler"):
        assert warn_without_autovacuum(engine) is off
    assert ("autovacuum = off" in caplog.text) is off


def test_no_autovacuum_warning_without_a_database() -> None:
    unreachable = create_engine("postgresql+psycopg://nobody@127.0.0.1:1/none")
    assert warn_without_autovacuum(unreachable) is False
