"""The gateway's transfer intake: group commit of intents and long-poll wake-ups.

Both live for the lifetime of the app (`cleanup_ctx`): the committer's writer tasks and
the LISTEN connection that wakes `?wait=` requests.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from typing import Any
from uuid import UUID

from aiohttp import web
from sqlalchemy.ext.asyncio import AsyncConnection

from gateway.final_waiter import FinalWaiter
from gateway.state import COMMITTER, ENGINE, SETTINGS, WAITER
from ledger_core.persistence.audit import AuditContext, audit_insert_many, audit_values
from ledger_core.persistence.group_intake import GroupCommitter, Request
from ledger_core.persistence.intake import Stored
from ledger_core.persistence.transfer_reads import get_transactions_unchecked
from ledger_core.transfers import transfer_audit_details
from vaultcraft import metrics
from vaultcraft.settings import to_psycopg_url


async def audit_submitted(conn: AsyncConnection, stored: Sequence[tuple[Request, Stored]]) -> None:
    """One `transfer.submitted` record per new transfer, in the transaction that stores it."""
    rows = [
        audit_values(
            request.context if isinstance(request.context, AuditContext) else AuditContext(),
            "transfer.submitted",
            resource_type="transaction",
            resource_id=result.row["id"],
            details=transfer_audit_details(result.row),
        )
        for request, result in stored
        if not result.replayed
    ]
    if rows:
        await conn.execute(*audit_insert_many(rows))
    for _, result in stored:
        if not result.replayed:
            metrics.transfers_accepted_total.labels(result.row["kind"]).inc()


async def intake_context(app: web.Application) -> AsyncIterator[None]:
    committer = GroupCommitter(app[ENGINE], after_store=audit_submitted)
    await committer.start()
    app[COMMITTER] = committer
    engine = app[ENGINE]

    async def read_rows(ids: Sequence[UUID]) -> dict[UUID, dict[str, Any]]:
        async with engine.connect() as conn:  # one statement: no transaction to begin or end
            await conn.execution_options(isolation_level="AUTOCOMMIT")
            return await get_transactions_unchecked(conn, ids)

    waiter = FinalWaiter(to_psycopg_url(app[SETTINGS].sqlalchemy_url), read_rows)
    await waiter.start()
    app[WAITER] = waiter
    yield
    await committer.stop()
    await waiter.stop()
