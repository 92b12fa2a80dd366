"""Risk rules in the database: the posting-time loader, and the admins' rule changes.

`load_policy` is the `PolicyLoader` the posting worker hands to `post_batch`. It runs
after the batch's wallets are locked `FOR UPDATE`, in the posting transaction, so the
window usage it reads for those wallets (their DEBIT entries inside each rule's window)
cannot change until this batch commits: a concurrent batch on the same wallet waits for
the lock and then reads this batch's entries. An organization without rules costs one
indexed lookup per batch.

Rule changes run in the caller's transaction with their audit record.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from uuid import UUID

from sqlalchemy import Connection, Row, func, select, text
from sqlalchemy.ext.asyncio import AsyncConnection

from ledger_core.accounts import Principal
from ledger_core.errors import CurrencyMismatch, NotFound
from ledger_core.keyset import Keyset
from ledger_core.money import parse_amount
from ledger_core.persistence.audit.records import AuditContext, audit_insert
from ledger_core.persistence.pages import newest_first, read_page
from ledger_core.persistence.tables import risk_rules, wallets
from ledger_core.posting import PendingTransfer, WalletState
from ledger_core.risk import (
    InvalidRule,
    RiskRule,
    RuleKind,
    RulePolicy,
    UsageKey,
    WindowUsage,
    check_rule_shape,
    rule_view,
    windows_to_load,
    with_changes,
)
from ledger_core.timestamps import rfc3339

ACTIVE_RULES = text("""
    SELECT id, organization_id, kind, wallet_type, currency, wallet_id, max_amount, max_count,
           window_seconds
    FROM risk_rules
    WHERE organization_id = ANY(CAST(:orgs AS uuid[])) AND is_active
""")

WINDOW_USAGE = text("""
    SELECT v.wallet_id, v.seconds, d.debits + h.holds AS debits, d.total + h.total AS total
    FROM unnest(CAST(:wallet_ids AS uuid[]), CAST(:seconds AS int[])) AS v(wallet_id, seconds)
    CROSS JOIN LATERAL (
        SELECT count(*) AS debits, coalesce(sum(e.amount), 0) AS total FROM ledger_entries AS e
        WHERE e.wallet_id = v.wallet_id AND e.direction = 'DEBIT'
          AND e.created_at > now() - make_interval(secs => v.seconds)
    ) AS d
    CROSS JOIN LATERAL (
        SELECT count(*) AS holds, coalesce(sum(t.hold_amount), 0) AS total FROM transactions AS t
        WHERE t.source_wallet_id = v.wallet_id AND t.status = 'HELD'
          AND t.created_at > now() - make_interval(secs => v.seconds)
    ) AS h
""")
"""A wallet's debits inside each window, from `ix_ledger_entries_debit_window` alone, and
its open holds placed inside it (`ix_transactions_source_wallet_id_created_at`).

Entries carry their posting transaction's start time, and `now()` here is this batch's.
Counting every debit newer than `now() - window` (later ones included) keeps every rolling
window within its limit: the last debit posted into any window was checked against all
the others in it, whatever order the timestamps came in. An open hold counts like a debit
of its amount (a capture is not checked again: see `ledger_core.holds`); once captured,
its entries count instead, once voided or expired nothing does. Both change only under
the wallet's lock, which the batch holds."""


def _rule(row: Any) -> RiskRule:
    m = row._mapping
    return RiskRule(
        id=m["id"],
        organization_id=m["organization_id"],
        kind=RuleKind(m["kind"]),
        wallet_type=m["wallet_type"],
        currency=m["currency"],
        wallet_id=m["wallet_id"],
        max_amount=m["max_amount"],
        max_count=m["max_count"],
        window_seconds=m["window_seconds"],
    )


def load_policy(
    conn: Connection, transfers: Sequence[PendingTransfer], locked: Mapping[UUID, WalletState]
) -> RulePolicy | None:
    """The batch's rules and window usage, read under the batch's wallet locks."""
    orgs = sorted(
        {t.organization_id for t in transfers} | {t.destination_organization_id for t in transfers}
    )
    rules = [_rule(row) for row in conn.execute(ACTIVE_RULES, {"orgs": orgs})]
    if not rules:
        return None
    needed = sorted(windows_to_load(rules, transfers, locked))
    usage: dict[UsageKey, WindowUsage] = {}
    if needed:
        rows = conn.execute(
            WINDOW_USAGE,
            {"wallet_ids": [w for w, _ in needed], "seconds": [s for _, s in needed]},
        )
        usage = {(r.wallet_id, r.seconds): WindowUsage(int(r.total), r.debits) for r in rows}
    return RulePolicy(rules, usage)


@dataclass(frozen=True)
class StoredRule:
    rule: RiskRule
    is_active: bool
    created_by: UUID | None
    created_at: datetime
    updated_at: datetime

    def as_json(self) -> dict[str, Any]:
        return {
            **rule_view(self.rule),
            "is_active": self.is_active,
            "created_by": None if self.created_by is None else str(self.created_by),
            "created_at": rfc3339(self.created_at),
            "updated_at": rfc3339(self.updated_at),
        }


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


def _stored(row: Row[Any]) -> StoredRule:
    m = row._mapping
    return StoredRule(_rule(row), m["is_active"], m["created_by"], m["created_at"], m["updated_at"])


async def _scope_currency(
    conn: AsyncConnection, principal: Principal, draft: RuleDraft
) -> str | None:
    """The rule's currency: as given, or the named wallet's; a foreign wallet is `404`."""
    if draft.wallet_id is None:
        return draft.currency
    found = (
        await conn.execute(
            select(wallets.c.currency, wallets.c.type).where(
                wallets.c.id == draft.wallet_id,
                wallets.c.organization_id == principal.organization_id,
            )
        )
    ).one_or_none()
    if found is None:
        raise NotFound("no such wallet", field="wallet_id")
    if draft.currency is not None and draft.currency != found.currency:
        raise CurrencyMismatch(f"the wallet holds {found.currency}", field="currency")
    if draft.wallet_type is not None and draft.wallet_type != found.type:
        raise InvalidRule(f"the wallet is a {found.type} wallet", field="wallet_type")
    return None if draft.kind is RuleKind.BLOCKED_WALLET else found.currency


def _minor(amount: str | None, currency: str | None) -> int | None:
    if amount is None:
        return None
    if currency is None:
        raise InvalidRule("an amount limit needs its currency", field="currency")
    return parse_amount(amount, currency, field="max_amount")


async def create_rule(
    conn: AsyncConnection, principal: Principal, audit: AuditContext, draft: RuleDraft
) -> StoredRule:
    currency = await _scope_currency(conn, principal, draft)
    rule = RiskRule(
        id=UUID(int=0),
        organization_id=principal.organization_id,
        kind=draft.kind,
        wallet_type=draft.wallet_type,
        currency=currency,
        wallet_id=draft.wallet_id,
        max_amount=_minor(draft.max_amount, currency),
        max_count=draft.max_count,
        window_seconds=draft.window_seconds,
    )
    check_rule_shape(rule)
    row = (
        await conn.execute(
            risk_rules.insert()
            .values(**rule_fields(rule), created_by=principal.user_id)
            .returning(*risk_rules.c)
        )
    ).one()
    stored = _stored(row)
    await conn.execute(
        audit_insert(
            audit,
            "risk_rule.created",
            resource_type="risk_rule",
            resource_id=stored.rule.id,
            details=rule_view(stored.rule),
        )
    )
    return stored


def rule_fields(rule: RiskRule) -> dict[str, Any]:
    """The stored columns of a rule, id aside."""
    fields = dataclasses.asdict(rule)
    del fields["id"]
    return {**fields, "kind": rule.kind.value}


async def get_rule(
    conn: AsyncConnection, principal: Principal, rule_id: UUID, *, for_update: bool = False
) -> StoredRule:
    """One of the organization's rules (admins only); another organization's is `404`."""
    stmt = select(risk_rules).where(
        risk_rules.c.id == rule_id, risk_rules.c.organization_id == principal.organization_id
    )
    if for_update:
        stmt = stmt.with_for_update()
    row = (await conn.execute(stmt)).one_or_none()
    if row is None:
        raise NotFound("no such risk rule")
    return _stored(row)


async def list_rules(
    conn: AsyncConnection,
    principal: Principal,
    *,
    kind: RuleKind | None,
    is_active: bool | None,
    after: Keyset | None,
    limit: int,
) -> tuple[list[StoredRule], Keyset | None]:
    stmt = select(risk_rules).where(risk_rules.c.organization_id == principal.organization_id)
    if kind is not None:
        stmt = stmt.where(risk_rules.c.kind == kind.value)
    if is_active is not None:
        stmt = stmt.where(risk_rules.c.is_active == is_active)
    stmt = newest_first(stmt, risk_rules.c.created_at, risk_rules.c.id, after, limit)
    page, next_key = await read_page(conn, stmt, limit)
    return [_stored(r) for r in page], next_key


async def change_rule(
    conn: AsyncConnection,
    principal: Principal,
    audit: AuditContext,
    rule_id: UUID,
    changes: Mapping[str, Any],
    *,
    action: str = "risk_rule.updated",
) -> StoredRule:
    """Change a rule's limits and/or whether it is active, under its row lock, audited.

    `changes` may hold `max_amount` (decimal string or None), `max_count`,
    `window_seconds` and `is_active`; the rule's kind and scope never change.
    """
    before = await get_rule(conn, principal, rule_id, for_update=True)
    limits = {k: v for k, v in changes.items() if k != "is_active"}
    if "max_amount" in limits:
        limits["max_amount"] = _minor(limits["max_amount"], before.rule.currency)
    rule = with_changes(before.rule, limits)
    is_active = bool(changes.get("is_active", before.is_active))
    if rule == before.rule and is_active == before.is_active:
        return before
    row = (
        await conn.execute(
            risk_rules.update()
            .where(risk_rules.c.id == rule_id)
            .values(**rule_fields(rule), is_active=is_active, updated_at=func.now())
            .returning(*risk_rules.c)
        )
    ).one()
    after = _stored(row)
    details = {
        "before": {**rule_view(before.rule), "is_active": before.is_active},
        "after": {**rule_view(after.rule), "is_active": after.is_active},
    }
    await conn.execute(
        audit_insert(audit, action, resource_type="risk_rule", resource_id=rule_id, details=details)
    )
    return after


async def deactivate_rule(
    conn: AsyncConnection, principal: Principal, audit: AuditContext, rule_id: UUID
) -> StoredRule:
    """Stop applying a rule; it stays listed, inactive, for the record."""
    return await change_rule(
        conn, principal, audit, rule_id, {"is_active": False}, action="risk_rule.deleted"
    )
