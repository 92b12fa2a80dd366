"""The reconciliation actor runs through a real broker and worker, and speaks up."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from dramatiq import Worker
from dramatiq.brokers.redis import RedisBroker
from prometheus_client import REGISTRY
from sqlalchemy import Engine, text

from runtime.settings import Settings
from tests.reconciliation.books import Books
from tests.reconciliation.ledgers import build_ledger
from tests.reconciliation.queues import queued


def sample(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


@pytest.fixture
def worker_db(db: Engine, settings: Settings, monkeypatch: pytest.MonkeyPatch) -> Engine:
    """Point the worker process's engine and settings at this test's database."""
    from workers import db as worker_db_module

    monkeypatch.setattr(worker_db_module, "_engine", db)
    monkeypatch.setattr(worker_db_module, "_settings", settings)
    return db


@pytest.fixture
def jobs_worker(broker: RedisBroker, worker_db: Engine) -> Iterator[Worker]:
    import workers.bootstrap  # noqa: F401  (declares the actors on the test broker)

    worker = Worker(broker, worker_timeout=100, worker_threads=1, queues={"jobs"})
    worker.start()
    yield worker
    worker.stop()


def test_a_drifting_ledger_is_reported_and_stuck_transfers_requeued(
    books: Books, broker: RedisBroker, jobs_worker: Worker, redis_url: str
) -> None:
    from messaging.messages import request_reconciliation

    # Given drift in Acme's books and a transfer stuck in PENDING for five minutes
    ledger = build_ledger(books)
    books.tamper("UPDATE wallets SET balance = balance + 7 WHERE id = :w", w=ledger.bob)
    books.unposted(ledger.alice, ledger.bob, 5, "PENDING", age_s=300)
    drift_before = sample("vaultcraft_reconciliation_discrepancies_total", kind="balance_mismatch")
    runs_before = sample("vaultcraft_reconciliation_runs_total", status="COMPLETED")

    # When a full reconciliation is requested through the jobs queue
    request_reconciliation(broker, "full")
    broker.join("jobs", timeout=30_000)
    jobs_worker.join()

    # Then the run is recorded with its findings
    with books.engine.connect() as conn:
        run = conn.execute(text("SELECT * FROM reconciliation_runs")).one()
        kinds = set(conn.execute(text("SELECT kind FROM reconciliation_discrepancies")).scalars())
        events = conn.execute(text("SELECT type, organization_id FROM outbox")).all()
    assert (run.status, run.mode, run.pending_requeued) == ("COMPLETED", "FULL", 1)
    assert kinds == {
        "balance_mismatch",
        "organization_sum_nonzero",
        "ledger_sum_nonzero",
        "stuck_pending",
    }
    assert [(e.type, e.organization_id) for e in events] == [
        ("reconciliation.drift_detected", ledger.acme)
    ]
    # and the posting workers were kicked through the broker
    (kick,) = queued(redis_url, "posting")
    assert (kick["actor_name"], kick["args"], kick["kwargs"]) == ("post_pending", [], {})
    # and the metrics moved
    assert sample("vaultcraft_reconciliation_runs_total", status="COMPLETED") == runs_before + 1
    assert (
        sample("vaultcraft_reconciliation_discrepancies_total", kind="balance_mismatch")
        == drift_before + 1
    )
    assert sample("vaultcraft_reconciliation_last_run_discrepancies") == 4
    assert sample("vaultcraft_reconciliation_duration_seconds_count", mode="full") >= 1


def test_a_clean_ledger_sends_nothing(
    books: Books, broker: RedisBroker, jobs_worker: Worker, redis_url: str
) -> None:
    from messaging.messages import request_reconciliation

    build_ledger(books)

    request_reconciliation(broker)
    broker.join("jobs", timeout=30_000)
    jobs_worker.join()

    with books.engine.connect() as conn:
        run = conn.execute(text("SELECT status, mode FROM reconciliation_runs")).one()
        assert conn.execute(text("SELECT count(*) FROM outbox")).scalar_one() == 0
    assert tuple(run) == ("COMPLETED", "INCREMENTAL")
    assert queued(redis_url, "posting") == []
    assert sample("vaultcraft_reconciliation_last_run_discrepancies") == 0


def test_an_unknown_mode_is_refused_without_retries(worker_db: Engine, broker: RedisBroker) -> None:
    from workers.bootstrap import ACTORS

    run_reconciliation = ACTORS["run_reconciliation"]
    with pytest.raises(ValueError, match="unknown reconciliation mode"):
        run_reconciliation.fn(mode="sideways")
    assert ValueError in run_reconciliation.options["throws"]
