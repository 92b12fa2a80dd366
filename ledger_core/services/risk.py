"""Risk rules: limits checked when transfers are posted (admins only)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any
from uuid import UUID

from sqlalchemy.ext.asyncio import AsyncEngine

from ledger_core.accounts import Principal, require_admin
from ledger_core.acting import Acting
from ledger_core.keyset import Keyset
from ledger_core.persistence.risk import rules as store
from ledger_core.persistence.risk.rules import RuleDraft, StoredRule
from ledger_core.risk import RuleKind


async def create_rule(engine: AsyncEngine, acting: Acting, draft: RuleDraft) -> StoredRule:
    require_admin(acting.principal)
    async with engine.begin() as conn:
        return await store.create_rule(conn, acting.principal, acting.audit, draft)


async def read_rule(engine: AsyncEngine, principal: Principal, rule_id: UUID) -> StoredRule:
    require_admin(principal)
    async with engine.connect() as conn:
        return await store.get_rule(conn, principal, rule_id)


async def rules_page(
    engine: AsyncEngine,
    principal: Principal,
    *,
    kind: RuleKind | None,
    is_active: bool | None,
    after: Keyset | None,
    limit: int,
) -> tuple[list[StoredRule], Keyset | None]:
    require_admin(principal)
    async with engine.connect() as conn:
        return await store.list_rules(
            conn, principal, kind=kind, is_active=is_active, after=after, limit=limit
        )


async def change_rule(
    engine: AsyncEngine, acting: Acting, rule_id: UUID, changes: Mapping[str, Any]
) -> StoredRule:
    """Change a rule's limits or activity; its kind and scope never change."""
    require_admin(acting.principal)
    async with engine.begin() as conn:
        return await store.change_rule(conn, acting.principal, acting.audit, rule_id, changes)


async def deactivate_rule(engine: AsyncEngine, acting: Acting, rule_id: UUID) -> StoredRule:
    require_admin(acting.principal)
    async with engine.begin() as conn:
        return await store.deactivate_rule(conn, acting.principal, acting.audit, rule_id)


__all__ = ["RuleDraft", "change_rule", "create_rule", "deactivate_rule", "read_rule", "rules_page"]
