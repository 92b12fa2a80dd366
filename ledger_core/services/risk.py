"""Risk rules: limits checked when transfers are posted (admins only).

A rule is checked here as a whole before it is stored; every change writes its audit
record (`risk_rule.created`, `risk_rule.updated`, `risk_rule.deleted`) in the same unit
of work, the change made under the rule's row lock.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from uuid import UUID

from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from ledger_core.accounts import Principal, require_admin
from ledger_core.acting import Acting
from ledger_core.errors import CurrencyMismatch, NotFound
from ledger_core.keyset import Keyset
from ledger_core.money import parse_amount
from ledger_core.persistence.audit.records import audit_insert
from ledger_core.persistence.risk import rules as store
from ledger_core.persistence.risk.rules import StoredRule
from ledger_core.risk import (
    InvalidRule,
    RiskRule,
    RuleKind,
    check_rule_shape,
    rule_view,
    with_changes,
)


@dataclass(frozen=True)
class RuleDraft:
    """A rule as an admin asks for it; `max_amount` is still a decimal string."""

    kind: RuleKind
    wallet_type: str | None = None
    currency: str | None = None
    wallet_id: UUID | None = None
    max_amount: str | None = None
    max_count: int | None = None
    window_seconds: int | None = None


async def create_rule(engine: AsyncEngine, acting: Acting, draft: RuleDraft) -> StoredRule:
    who = acting.principal
    require_admin(who)
    async with engine.begin() as conn:
        currency = await _scope_currency(conn, who.organization_id, draft)
        rule = RiskRule(
            id=UUID(int=0),
            organization_id=who.organization_id,
            kind=draft.kind,
            wallet_type=draft.wallet_type,
            currency=currency,
            wallet_id=draft.wallet_id,
            max_amount=_minor(draft.max_amount, currency),
            max_count=draft.max_count,
            window_seconds=draft.window_seconds,
        )
        check_rule_shape(rule)
        stored = await store.insert_rule(conn, rule, who.user_id)
        await _audit(conn, acting, "risk_rule.created", stored.rule.id, rule_view(stored.rule))
    return stored


async def read_rule(engine: AsyncEngine, principal: Principal, rule_id: UUID) -> StoredRule:
    require_admin(principal)
    async with engine.connect() as conn:
        return _found(await store.get_rule(conn, principal.organization_id, rule_id))


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
            conn,
            principal.organization_id,
            kind=kind,
            is_active=is_active,
            after=after,
            limit=limit,
        )


async def change_rule(
    engine: AsyncEngine,
    acting: Acting,
    rule_id: UUID,
    changes: Mapping[str, Any],
    *,
    action: str = "risk_rule.updated",
) -> StoredRule:
    """Change a rule's limits and/or whether it is active; its kind and scope never change.

    `changes` may hold `max_amount` (decimal string or None), `max_count`,
    `window_seconds` and `is_active`. A change that changes nothing writes nothing.
    """
    require_admin(acting.principal)
    async with engine.begin() as conn:
        before = _found(
            await store.get_rule(conn, acting.principal.organization_id, rule_id, for_update=True)
        )
        limits = {k: v for k, v in changes.items() if k != "is_active"}
        if "max_amount" in limits:
            limits["max_amount"] = _minor(limits["max_amount"], before.rule.currency)
        rule = with_changes(before.rule, limits)
        is_active = bool(changes.get("is_active", before.is_active))
        if rule == before.rule and is_active == before.is_active:
            return before
        after = await store.update_rule(conn, rule_id, rule, is_active=is_active)
        details = {
            "before": {**rule_view(before.rule), "is_active": before.is_active},
            "after": {**rule_view(after.rule), "is_active": after.is_active},
        }
        await _audit(conn, acting, action, rule_id, details)
    return after


async def deactivate_rule(engine: AsyncEngine, acting: Acting, rule_id: UUID) -> StoredRule:
    """Stop applying a rule; it stays listed, inactive, for the record."""
    return await change_rule(
        engine, acting, rule_id, {"is_active": False}, action="risk_rule.deleted"
    )


async def _scope_currency(
    conn: AsyncConnection, organization_id: UUID, draft: RuleDraft
) -> str | None:
    """The rule's currency: as given, or the named wallet's; a foreign wallet is `404`."""
    if draft.wallet_id is None:
        return draft.currency
    found = await store.wallet_scope(conn, organization_id, draft.wallet_id)
    if found is None:
        raise NotFound("no such wallet", field="wallet_id")
    currency, wallet_type = found
    if draft.currency is not None and draft.currency != currency:
        raise CurrencyMismatch(f"the wallet holds {currency}", field="currency")
    if draft.wallet_type is not None and draft.wallet_type != wallet_type:
        raise InvalidRule(f"the wallet is a {wallet_type} wallet", field="wallet_type")
    return None if draft.kind is RuleKind.BLOCKED_WALLET else currency


def _minor(amount: str | None, currency: str | None) -> int | None:
    if amount is None:
        return None
    if currency is None:
        raise InvalidRule("an amount limit needs its currency", field="currency")
    return parse_amount(amount, currency, field="max_amount")


def _found(rule: StoredRule | None) -> StoredRule:
    if rule is None:
        raise NotFound("no such risk rule")
    return rule


async def _audit(
    conn: AsyncConnection, acting: Acting, action: str, rule_id: UUID, details: dict[str, Any]
) -> None:
    await conn.execute(
        audit_insert(
            acting.audit, action, resource_type="risk_rule", resource_id=rule_id, details=details
        )
    )


__all__ = ["RuleDraft", "change_rule", "create_rule", "deactivate_rule", "read_rule", "rules_page"]
