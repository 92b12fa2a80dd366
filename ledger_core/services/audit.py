"""The audit trail as an organization's admins read and verify it."""

from __future__ import annotations

from typing import Any

from sqlalchemy.ext.asyncio import AsyncEngine

from ledger_core.accounts import Principal, require_admin
from ledger_core.keyset import Keyset
from ledger_core.persistence.audit.chain import ChainReport
from ledger_core.persistence.audit.reads import AuditFilters, list_audit_logs, verify_audit_chain


async def audit_page(
    engine: AsyncEngine,
    principal: Principal,
    filters: AuditFilters,
    *,
    after: Keyset | None,
    limit: int,
) -> tuple[list[dict[str, Any]], Keyset | None]:
    require_admin(principal)
    async with engine.connect() as conn:
        return await list_audit_logs(conn, principal, filters, after=after, limit=limit)


async def verify_chain(engine: AsyncEngine, principal: Principal) -> ChainReport:
    """Walk the organization's sealed chain; see `ledger_core.audit_chain`."""
    require_admin(principal)
    async with engine.connect() as conn:
        return await verify_audit_chain(conn, principal)


__all__ = ["AuditFilters", "audit_page", "verify_chain"]
