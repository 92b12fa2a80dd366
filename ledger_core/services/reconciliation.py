"""Reconciliation as admins ask for and read it; the run itself is the workers' job.

Runs are ledger-wide. Scheduled runs are visible to every admin; a requested run only to
the organization that asked and to those it found drift for. Discrepancies are only ever
shown to the organization whose books they are in.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any
from uuid import UUID

from sqlalchemy.ext.asyncio import AsyncEngine

from ledger_core.accounts import Principal, require_admin
from ledger_core.acting import Acting
from ledger_core.keyset import Keyset
from ledger_core.persistence.audit.records import audit_insert
from ledger_core.persistence.reconciliation.reports import (
    REQUESTED,
    RunSummary,
    list_runs,
    request_run,
    run_report,
)
from ledger_core.reconciliation import Mode

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
        return await run_report(conn, principal, run_id)
