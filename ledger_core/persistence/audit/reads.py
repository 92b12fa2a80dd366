"""Reading the audit trail: an organization's records, newest first, with filters.

Pages follow the record id (the order records were written), served by the
`(organization_id, id)` and `(organization_id, action, id)` indexes; each record's place in
its chain comes from its seal, once it has one. The records of
logins with an unknown email belong to no organization and are not listed here.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any
from uuid import UUID

from sqlalchemy import Row, Select, select
from sqlalchemy.ext.asyncio import AsyncConnection

from ledger_core.accounts import Principal
from ledger_core.keyset import Keyset
from ledger_core.persistence.audit.chain import ChainReport, verify_chain
from ledger_core.persistence.pages import read_page
from ledger_core.persistence.tables import audit_logs, audit_seals
from ledger_core.timestamps import rfc3339


@dataclass(frozen=True)
class AuditFilters:
    action: str | None = None
    actor_id: UUID | None = None
    resource_id: str | None = None
    since: datetime | None = None
    until: datetime | None = None


def audit_json(row: Row[Any]) -> dict[str, Any]:
    return {
        "id": row.id,
        "organization_id": None if row.organization_id is None else str(row.organization_id),
        "actor_id": None if row.actor_id is None else str(row.actor_id),
        "action": row.action,
        "resource_type": row.resource_type,
        "resource_id": row.resource_id,
        "client_address": row.client_address,
        "user_agent": row.user_agent,
        "request_id": row.request_id,
        "details": row.details,
        "created_at": rfc3339(row.created_at),
        "chain_seq": row.chain_seq,
        "prev_hash": row.prev_hash,
        "hash": row.hash,
    }


async def list_audit_logs(
    conn: AsyncConnection,
    principal: Principal,
    filters: AuditFilters,
    *,
    after: Keyset | None,
    limit: int,
) -> tuple[list[dict[str, Any]], Keyset | None]:
    """The organization's audit records matching `filters`, newest first (admin)."""
    stmt: Select[Any] = (
        select(audit_logs, audit_seals.c.chain_seq, audit_seals.c.prev_hash, audit_seals.c.hash)
        .select_from(audit_logs.outerjoin(audit_seals, audit_seals.c.record_id == audit_logs.c.id))
        .where(audit_logs.c.organization_id == principal.organization_id)
    )
    if filters.action is not None:
        stmt = stmt.where(audit_logs.c.action == filters.action)
    if filters.actor_id is not None:
        stmt = stmt.where(audit_logs.c.actor_id == filters.actor_id)
    if filters.resource_id is not None:
        stmt = stmt.where(audit_logs.c.resource_id == filters.resource_id)
    if filters.since is not None:
        stmt = stmt.where(audit_logs.c.created_at >= filters.since)
    if filters.until is not None:
        stmt = stmt.where(audit_logs.c.created_at < filters.until)
    if after is not None:
        stmt = stmt.where(audit_logs.c.id < after.id)
    stmt = stmt.order_by(audit_logs.c.id.desc()).limit(limit + 1)
    page, next_key = await read_page(conn, stmt, limit)
    return [audit_json(r) for r in page], next_key


async def verify_audit_chain(conn: AsyncConnection, principal: Principal) -> ChainReport:
    """Check the organization's whole chain (admin); see `ledger_core.audit_chain`."""
    organization_id = principal.organization_id
    return await conn.run_sync(lambda sync: verify_chain(sync, organization_id))
