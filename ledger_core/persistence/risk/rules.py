"""Risk rules in the database: the posting-time loader, and the admins' rule changes.

`load_policy` is the `PolicyLoader` the posting worker hands to `post_batch`. It runs
after the batch's wallets are locked `FOR UPDATE`, in the posting transaction, so the
window usage it reads for those wallets (their DEBIT entries inside each rule's window)
cannot change until this batch commits: a concurrent batch on the same wallet waits for
the lock and then reads this batch's entries. An organization without rules costs one
indexed lookup per batch.

The admins' rule changes are SQL only here: `ledger_core.services.risk` decides them and
writes their audit records.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from uuid import UUID

from psycopg.rows import dict_row
from sqlalchemy import Connection, Row, func, select, text
from sqlalchemy.ext.asyncio import AsyncConnection

from ledger_core.keyset import Keyset
from ledger_core.persistence.arrays import pg_uuid_array
from ledger_core.persistence.direct import fetch_all_sync
from ledger_core.persistence.pages import newest_page
from ledger_core.persistence.rows import exactly_one, one_or_none, owned
from ledger_core.persistence.tables import risk_rules, wallets
from ledger_core.posting import PendingTransfer, WalletState
from ledger_core.risk import (
    RiskRule,
    RuleKind,
    RulePolicy,
    UsageKey,
    WindowUsage,
    rule_view,
    windows_to_load,
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


def _rule(m: Mapping[Any, Any]) -> RiskRule:
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
        {t.organization_id for t in transfers}
        | {t.destination_organization_id for t in transfers}
        | {
            payee
            for t in transfers
            if t.postings is not None  # another transfer pays only its destination's
            for payee in t.payee_organization_ids()
        }
    )
    params = {"orgs": pg_uuid_array(orgs)}
    rules = [_rule(row) for row in fetch_all_sync(conn, ACTIVE_RULES, params, dict_row)]
    if not rules:
        return None
    needed = sorted(windows_to_load(rules, transfers, locked))
    usage: dict[UsageKey, WindowUsage] = {}
    if needed:
        rows = fetch_all_sync(
            conn,
            WINDOW_USAGE,
            {"wallet_ids": [w for w, _ in needed], "seconds": [s for _, s in needed]},
        )
        usage = {(wallet, s): WindowUsage(int(total), debits) for wallet, s, debits, total in rows}
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


def _stored(row: Row[Any]) -> StoredRule:
    m = row._mapping
    return StoredRule(_rule(m), m["is_active"], m["created_by"], m["created_at"], m["updated_at"])


async def wallet_scope(
    conn: AsyncConnection, organization_id: UUID, wallet_id: UUID
) -> tuple[str, str] | None:
    """The currency and type of one of the organization's wallets, or None."""
    stmt = select(wallets.c.currency, wallets.c.type).where(
        *owned(wallets, organization_id, wallet_id)
    )
    return await one_or_none(conn, stmt, lambda row: (row.currency, row.type))


async def insert_rule(conn: AsyncConnection, rule: RiskRule, created_by: UUID | None) -> StoredRule:
    """Store a new rule (its `id` is the database's)."""
    insert = risk_rules.insert().values(**rule_fields(rule), created_by=created_by)
    return await exactly_one(conn, insert.returning(*risk_rules.c), _stored)


def rule_fields(rule: RiskRule) -> dict[str, Any]:
    """The stored columns of a rule, id aside."""
    fields = dataclasses.asdict(rule)
    del fields["id"]
    return {**fields, "kind": rule.kind.value}


async def get_rule(
    conn: AsyncConnection, organization_id: UUID, rule_id: UUID, *, for_update: bool = False
) -> StoredRule | None:
    """One of the organization's rules; another organization's is not found."""
    stmt = select(risk_rules).where(*owned(risk_rules, organization_id, rule_id))
    if for_update:
        stmt = stmt.with_for_update()
    return await one_or_none(conn, stmt, _stored)


async def list_rules(
    conn: AsyncConnection,
    organization_id: UUID,
    *,
    kind: RuleKind | None,
    is_active: bool | None,
    after: Keyset | None,
    limit: int,
) -> tuple[list[StoredRule], Keyset | None]:
    stmt = select(risk_rules).where(risk_rules.c.organization_id == organization_id)
    if kind is not None:
        stmt = stmt.where(risk_rules.c.kind == kind.value)
    if is_active is not None:
        stmt = stmt.where(risk_rules.c.is_active == is_active)
    return await newest_page(conn, stmt, risk_rules, _stored, after=after, limit=limit)


async def update_rule(
    conn: AsyncConnection, rule_id: UUID, rule: RiskRule, *, is_active: bool
) -> StoredRule:
    """Store a rule's new limits and activity (the caller holds its row lock)."""
    stmt = (
        risk_rules.update()
        .where(risk_rules.c.id == rule_id)
        .values(**rule_fields(rule), is_active=is_active, updated_at=func.now())
    )
    return await exactly_one(conn, stmt.returning(*risk_rules.c), _stored)
