"""The scheduler: the periodic jobs that keep the system honest when nobody asks.

- reconciliation, incremental every `VAULTCRAFT_RECONCILE_INTERVAL_S` (60 s) and full
  every night at 03:15 UTC, sent to the `jobs` queue;
- settlement every `VAULTCRAFT_SETTLE_INTERVAL_S` (60 s), sent to the `jobs` queue;
- PENDING rescue every `VAULTCRAFT_RESCUE_INTERVAL_S` (5 s): if any waiting transfer
  is older than `VAULTCRAFT_PENDING_RESCUE_AFTER_S`, the posting workers are
  kicked. This is how work lost with a broker restart is found again from PostgreSQL;
- gauges (pending transfers and the oldest one's age, outbox backlog and age, the age of
  the first audit record waiting for its seal) refreshed at the rescue interval;
- hold expiry at the rescue interval: HELD transfers past `hold_expires_at` end EXPIRED.

Several schedulers may run; each job runs in only one of them (see `job_guard`).
Requests to the `jobs` queue expire after one interval, so a worker coming back from an
outage runs the latest request instead of a backlog of identical ones. SIGTERM or SIGINT
stops the scheduler after the running jobs finish, releasing its job locks.
"""

from __future__ import annotations

import logging
import signal
import threading
import time
from collections.abc import Callable
from datetime import UTC
from types import FrameType

from apscheduler.schedulers.blocking import BlockingScheduler
from apscheduler.triggers.cron import CronTrigger
from apscheduler.triggers.interval import IntervalTrigger
from dramatiq import Broker
from sqlalchemy import Engine, text
from sqlalchemy.exc import DBAPIError

from ledger_core.persistence.audit.chain import OLDEST_UNSEALED_AGE_SQL
from ledger_core.persistence.events.outbox_relay import OUTBOX_BACKLOG_SQL
from ledger_core.persistence.transfers.pending_probe import pending_waiting_sa
from ledger_core.persistence.transfers.pipeline_health import OLDEST_PENDING_AGE_SQL
from ledger_core.services.holds import EXPIRE_BATCH, expire_overdue
from messaging.broker import setup_broker
from messaging.messages import kick_posting, request_reconciliation, request_settlement
from runtime.settings import Settings, to_psycopg_url
from runtime.startup_heap import settle_startup_heap
from workers import db
from workers.job_guard import JobGuard

log = logging.getLogger("vaultcraft.scheduler")

FULL_RECONCILIATION = CronTrigger(hour=3, minute=15, timezone=UTC)

PENDING_COUNTED_UP_TO = 100_000
"""`vaultcraft_pending_transfers` counts waiting transfers up to this many: past it, a count
would read a backlog's every index entry each refresh, when it is needed least (the oldest
waiting transfer's age says how bad it is)."""

_GAUGES = text(f"""
    SELECT (SELECT count(*) FROM (
                SELECT 1 FROM transactions WHERE status = 'PENDING' LIMIT :counted_up_to
            ) AS waiting) AS pending,
           ({OLDEST_PENDING_AGE_SQL}) AS oldest_pending_age,
           outbox.backlog, outbox.oldest_age,
           ({OLDEST_UNSEALED_AGE_SQL}) AS oldest_unsealed_age
    FROM ({OUTBOX_BACKLOG_SQL}) AS outbox
""")


def rescue_pending(engine: Engine, broker: Broker, after_s: int) -> bool:
    """Kick the posting workers if any PENDING transfer waited too long (an indexed probe)."""
    with engine.connect() as conn:
        stuck = pending_waiting_sa(conn, after_s)
    if stuck:
        from runtime import metrics  # late: see `main`

        kick_posting(broker)
        metrics.pending_rescued_total.inc()
        log.warning("Transfers have waited in PENDING over %d s; posting workers kicked.", after_s)
    return stuck


def expire_holds(engine: Engine) -> int:
    """End every overdue hold as EXPIRED, a batch per database transaction."""
    expired = 0
    while (count := expire_overdue(engine, EXPIRE_BATCH)) > 0:
        expired += count
        if count < EXPIRE_BATCH:
            break
    if expired:
        log.info("Expired %d holds.", expired)
    return expired


def refresh_gauges(engine: Engine) -> None:
    from runtime import metrics  # late: see `main`

    with engine.connect() as conn:
        row = conn.execute(_GAUGES, {"counted_up_to": PENDING_COUNTED_UP_TO}).one()
    metrics.pending_transfers.set(row.pending)
    metrics.oldest_pending_age_seconds.set(float(row.oldest_pending_age))
    metrics.outbox_backlog.set(row.backlog)
    metrics.outbox_oldest_unsent_age_seconds.set(float(row.oldest_age or 0))
    metrics.audit_oldest_unsealed_age_seconds.set(float(row.oldest_unsealed_age or 0))


def guarded(guard: JobGuard, job: Callable[[], object]) -> Callable[[], None]:
    """Run `job` only in the scheduler that holds the job's lock; never let it raise."""

    def run() -> None:
        if not guard.try_acquire():
            return
        try:
            job()
        except Exception:
            log.exception("Scheduled job %s failed; it runs again at its next tick.", guard.job)

    return run


def build_scheduler(
    settings: Settings, engine: Engine, broker: Broker, dsn: str
) -> tuple[BlockingScheduler, list[JobGuard]]:
    reconcile_every, settle_every = settings.reconcile_interval_s, settings.settle_interval_s
    jobs: dict[str, tuple[object, Callable[[], object]]] = {
        "reconcile-incremental": (
            IntervalTrigger(seconds=reconcile_every),
            lambda: request_reconciliation(broker, "incremental", max_age_s=reconcile_every),
        ),
        "reconcile-full": (
            FULL_RECONCILIATION,
            lambda: request_reconciliation(broker, "full", max_age_s=86_400),
        ),
        "settle": (
            IntervalTrigger(seconds=settle_every),
            lambda: request_settlement(broker, max_age_s=settle_every),
        ),
        "rescue-pending": (
            IntervalTrigger(seconds=settings.rescue_interval_s),
            lambda: rescue_pending(engine, broker, settings.pending_rescue_after_s),
        ),
        "expire-holds": (
            IntervalTrigger(seconds=settings.rescue_interval_s),
            lambda: expire_holds(engine),
        ),
        "refresh-gauges": (
            IntervalTrigger(seconds=settings.rescue_interval_s),
            lambda: refresh_gauges(engine),
        ),
    }
    scheduler = BlockingScheduler(
        timezone=UTC,
        job_defaults={"coalesce": True, "max_instances": 1, "misfire_grace_time": 30},
    )
    guards = []
    for name, (trigger, job) in jobs.items():
        guard = JobGuard(dsn, name)
        guards.append(guard)
        scheduler.add_job(guarded(guard, job), trigger, id=name, name=name)
    return scheduler, guards


def warn_without_autovacuum(engine: Engine) -> bool:
    """Say so, once at start, when the server runs with `autovacuum = off`, and return
    whether it did. Every posted transfer leaves a dead row version in `transactions` that
    only a vacuum reclaims in full; without one the ledger's tables and indexes grow with
    every transfer (docs/operations.md, "External PostgreSQL"). A database not reachable
    yet is left to the jobs to report."""
    try:
        with engine.connect() as conn:
            setting = conn.scalar(text("SELECT current_setting('autovacuum')"))
    except DBAPIError:
        return False
    if setting == "on":
        return False
    log.warning(
        "PostgreSQL runs with autovacuum = %s: dead row versions of posted transfers will"
        " pile up until the operator vacuums. Turn it on (docs/operations.md).",
        setting,
    )
    return True


def main(settings: Settings | None = None) -> None:
    """Run the scheduler in the foreground until SIGTERM or SIGINT.

    Its gauges are served on `VAULTCRAFT_METRICS_PORT` + 2. The metrics must live in the
    group's directory before anything creates them, so this module imports
    `runtime.metrics` only inside the jobs, never at load time.
    """
    from runtime.metrics_exposition import start_group_metrics

    settings = settings or Settings.from_env()
    start_group_metrics("scheduler", settings)
    if not logging.getLogger().handlers:
        logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    logging.getLogger("apscheduler").setLevel(logging.WARNING)  # a line per tick is noise
    url = db.database_url(settings)
    engine = db.pooled_engine(url, pool_size=2, max_overflow=2)
    warn_without_autovacuum(engine)
    broker = setup_broker(settings)
    dsn = to_psycopg_url(url)
    scheduler, guards = build_scheduler(settings, engine, broker, dsn)

    def shut_down() -> None:
        while not scheduler.running:  # a signal may come before start() got going
            time.sleep(0.05)
        scheduler.shutdown(wait=True)

    stopper = threading.Thread(target=shut_down, name="scheduler-shutdown", daemon=True)

    def stop(signum: int, _frame: FrameType | None) -> None:
        # Shutting down from a thread, not in the handler: the handler interrupts the main
        # thread, possibly inside the scheduler's own locked sections.
        log.info("Received %s; stopping once running jobs finish.", signal.Signals(signum).name)
        if not stopper.is_alive() and stopper.ident is None:
            stopper.start()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    log.info("Scheduler started with jobs: %s.", ", ".join(g.job for g in guards))
    settle_startup_heap()
    try:
        scheduler.start()
    finally:
        if stopper.is_alive():
            stopper.join(timeout=120)
        for guard in guards:
            guard.release()
        engine.dispose()
        log.info("Scheduler stopped.")


if __name__ == "__main__":
    main()
