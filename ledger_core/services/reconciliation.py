"""Reconciliation as admins ask for and read it; the run itself is the workers' job.

`reconcile` is the run itself, which the workers' actor and `vaultcraft reconcile` call.
Runs are ledger-wide. Scheduled runs are visible to every admin; a requested run only to
the organization that asked and to those it found drift for. Discrepancies are only ever
shown to the organization whose books they are in.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Awaitable, Callable
from typing import Any
from uuid import UUID

from sqlalchemy import Engine
from sqlalchemy.ext.asyncio import AsyncEngine

from ledger_core.accounts import Principal, require_admin
from ledger_core.acting import Acting
from ledger_core.errors import NotFound
from ledger_core.keyset import Keyset
from ledger_core.persistence.audit.records import audit_insert
from ledger_core.persistence.reconciliation.checks import check_ledger
from ledger_core.persistence.reconciliation.reports import (
    REQUESTED,
    RunSummary,
    list_runs,
    request_run,
    run_report,
)
from ledger_core.persistence.reconciliation.runs import (
    claim_run,
    consistent_snapshot,
    record_failure,
    record_findings,
)
from ledger_core.reconciliation import Mode, RunOutcome

log = logging.getLogger("vaultcraft.reconciliation")

SendRun = Callable[[UUID, Mode], Awaitable[None]]
"""Hands a stored PENDING run to the reconciliation workers."""


async def request_reconciliation(
    engine: AsyncEngine, acting: Acting, mode: Mode, send: SendRun
) -> RunSummary:
    """Store a PENDING run with its audit record and hand it to the workers.

    The run is sent before the commit: if the broker is unreachable nothing is stored. A
    worker that gets the message first waits on the uncommitted row (the claim is an
    upsert on the run id) and then takes the run.
    """
    require_admin(acting.principal)
    async with engine.begin() as conn:
        run = await request_run(conn, acting.principal, mode)
        await conn.execute(
            audit_insert(
                acting.audit,
                REQUESTED,
                resource_type="reconciliation_run",
                resource_id=run.id,
                details={"mode": mode.value},
            )
        )
        await send(run.id, mode)
    return run


async def runs_page(
    engine: AsyncEngine, principal: Principal, *, after: Keyset | None, limit: int
) -> tuple[list[RunSummary], Keyset | None]:
    require_admin(principal)
    async with engine.connect() as conn:
        return await list_runs(conn, principal, after=after, limit=limit)


async def report(
    engine: AsyncEngine, principal: Principal, run_id: UUID
) -> tuple[RunSummary, list[dict[str, Any]]]:
    require_admin(principal)
    async with engine.connect() as conn:
        found = await run_report(conn, principal, run_id)
    if found is None:
        raise NotFound("reconciliation run not found")
    return found


def reconcile(
    engine: Engine,
    mode: Mode,
    *,
    pending_after_s: int,
    run_id: UUID | None = None,
    requeue: Callable[[], None] | None = None,
) -> RunOutcome:
    """Claim, check, re-enqueue stuck transfers, record. Safe to deliver twice.

    A failed check is recorded as a FAILED run and returned, not raised: the next
    scheduled run is the retry, and a retried message would find the run already final.
    """
    started = time.perf_counter()
    claimed = claim_run(engine, run_id, mode)
    if claimed is None:
        return RunOutcome(run_id or uuid.uuid4(), mode, "SKIPPED", None, 0.0, skipped=True)
    run_id, mode = claimed
    try:
        with consistent_snapshot(engine) as conn:
            findings = check_ledger(conn, mode, pending_after_s)
        stuck = findings.pending_stuck
        requeued = stuck if stuck and _requeue(requeue) else 0
        record_findings(engine, run_id, findings, requeued)
    except Exception as exc:
        record_failure(engine, run_id, f"{type(exc).__name__}: {exc}")
        return RunOutcome(
            run_id, mode, "FAILED", None, time.perf_counter() - started, error=str(exc)
        )
    duration = time.perf_counter() - started
    return RunOutcome(run_id, mode, "COMPLETED", findings, duration, requeued=requeued)


def _requeue(requeue: Callable[[], None] | None) -> bool:
    """Kick the posting workers; a broker outage must not cost the run its findings."""
    if requeue is None:
        return False
    try:
        requeue()
    except Exception:
        log.exception("Could not re-enqueue stuck PENDING transfers; the next rescue will.")
        return False
    return True
