"""The reconciliation actor's job: a thin adapter over `ledger_core` that also speaks up.

A run checks the ledger against itself, records what it found, re-enqueues transfers
stuck in PENDING and, on any discrepancy, logs an error and bumps the drift metrics; the
outbox event for each affected organization is written by the run itself. A redelivered
message finds its run already final and does nothing.

`python -m workers.reconciliation --generate 1000000 --full` builds a valid ledger of a
million entries in new organizations and times a full run over the whole database; its
last line of output is a JSON object.
"""

from __future__ import annotations

import argparse
import json
import logging
import time
from uuid import UUID

from dramatiq import Broker
from sqlalchemy import Engine, text

from ledger_core.persistence.transfers.ledger_generator import generate_ledger
from ledger_core.reconciliation import Mode, RunOutcome
from ledger_core.services.reconciliation import reconcile
from messaging.broker import setup_broker
from messaging.messages import kick_posting
from runtime import metrics
from runtime.settings import Settings
from workers import db

log = logging.getLogger("vaultcraft.reconciliation")


def reconcile_now(
    engine: Engine,
    settings: Settings,
    mode: Mode,
    run_id: UUID | None = None,
    broker: Broker | None = None,
) -> RunOutcome:
    """Run (or finish) one reconciliation and report it in logs and metrics.

    Transfers found stuck in PENDING are kicked through `broker` (by default the
    process's, set up from `settings`: what the CLI runs with).
    """
    kicks = broker or setup_broker(settings)
    outcome = reconcile(
        engine,
        mode,
        pending_after_s=settings.pending_rescue_after_s,
        run_id=run_id,
        requeue=lambda: kick_posting(kicks),
    )
    observe(outcome)
    return outcome


def observe(outcome: RunOutcome) -> None:
    if outcome.skipped:
        log.info("Reconciliation run %s was already taken by another delivery.", outcome.run_id)
        return
    metrics.reconciliation_runs_total.labels(outcome.status).inc()
    metrics.reconciliation_duration_seconds.labels(outcome.mode.value.lower()).observe(
        outcome.duration_s
    )
    findings = outcome.findings
    if findings is None:
        log.error("Reconciliation run %s failed: %s", outcome.run_id, outcome.error)
        return
    counts = findings.counts_by_kind()
    metrics.reconciliation_last_run_discrepancies.set(len(findings.discrepancies))
    for kind, count in counts.items():
        metrics.reconciliation_discrepancies_total.labels(kind.value).inc(count)
    if outcome.requeued:
        metrics.pending_rescued_total.inc()
    summary = (
        f"{findings.wallets_checked} wallets and {findings.entries_checked} entries"
        f" in {outcome.duration_s:.2f} s"
    )
    if counts:
        found = ", ".join(f"{count} {kind.value}" for kind, count in sorted(counts.items()))
        log.error(
            "Ledger drift: %s reconciliation run %s found %s over %s.",
            outcome.mode.value.lower(),
            outcome.run_id,
            found,
            summary,
        )
    else:
        log.info("Reconciliation run %s found the ledger clean: %s.", outcome.run_id, summary)


def run_reconciliation(
    broker: Broker, run_id: str | None = None, mode: str = "incremental"
) -> None:
    """Reconcile the ledger; `run_id` names a run requested through the API."""
    run = UUID(run_id) if run_id else None
    reconcile_now(db.engine(), db.settings(), Mode.parse(mode), run, broker)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--generate", type=int, default=0, help="entries to add first")
    parser.add_argument("--wallets", type=int, default=1000, help="wallets per organization")
    parser.add_argument("--organizations", type=int, default=10)
    parser.add_argument("--full", action="store_true", help="read everything (else incremental)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    engine = db.engine()
    result: dict[str, object] = {}
    if args.generate:
        started = time.perf_counter()
        with engine.begin() as conn:
            generate_ledger(
                conn, args.generate, wallets_per_org=args.wallets, organizations=args.organizations
            )
        with engine.connect() as conn:
            conn.execution_options(isolation_level="AUTOCOMMIT").execute(text("ANALYZE"))
        result["generate_s"] = round(time.perf_counter() - started, 3)
    outcome = reconcile_now(engine, db.settings(), Mode.FULL if args.full else Mode.INCREMENTAL)
    findings = outcome.findings
    result |= {
        "run_id": str(outcome.run_id),
        "mode": outcome.mode.value.lower(),
        "status": outcome.status,
        "seconds": round(outcome.duration_s, 3),
        "wallets_checked": findings.wallets_checked if findings else 0,
        "entries_checked": findings.entries_checked if findings else 0,
        "discrepancies": len(findings.discrepancies) if findings else None,
    }
    print(json.dumps(result))
    return 0 if outcome.status == "COMPLETED" else 1


if __name__ == "__main__":
    raise SystemExit(main())
