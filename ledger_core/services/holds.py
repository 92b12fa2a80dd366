"""Holds: capture or void one (the payer's request), expire the overdue ones (the scheduler).

Each runs in one unit of work: lock the hold and its wallets (in the posting workers'
order), decide with `ledger_core.holds`, write the release, any entries, the final status,
its event and the audit record. A hold ends exactly once: whoever takes its row lock
first ends it; the others find it no longer HELD (`not_held`, or skipped by the expiry).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any
from uuid import UUID

from sqlalchemy import Connection, Engine
from sqlalchemy.ext.asyncio import AsyncEngine

from ledger_core.acting import Acting, AuditContext
from ledger_core.errors import NotFound
from ledger_core.holds import (
    ENDED_AS,
    HoldAction,
    HoldEnding,
    captured_amount,
    end_hold,
    is_replay,
)
from ledger_core.intents import Stored
from ledger_core.money import parse_amount
from ledger_core.persistence.audit.records import audit_insert
from ledger_core.persistence.transfers.claim import pending_of
from ledger_core.persistence.transfers.holds import Ending, lock_hold, lock_overdue, write_endings
from ledger_core.persistence.transfers.posting import lock_wallets
from ledger_core.posting import Entry
from ledger_core.transfer_rules import check_may_cancel
from ledger_core.transfers import transfer_audit_details

EXPIRE_BATCH = 500
"""Overdue holds expired per unit of work."""


async def end_one(
    engine: AsyncEngine,
    acting: Acting,
    transfer_id: UUID,
    action: HoldAction,
    key: str,
    amount: str | None = None,
) -> Stored:
    """Capture (`amount`, a decimal string, or all) or void a HELD transfer; the request
    that ended it, repeated with its key, comes back `replayed`."""
    async with engine.begin() as conn:
        return await conn.run_sync(_end_one, acting, transfer_id, action, key, amount)


def _end_one(
    conn: Connection,
    acting: Acting,
    transfer_id: UUID,
    action: HoldAction,
    key: str,
    amount_text: str | None,
) -> Stored:
    who = acting.principal
    row = lock_hold(conn, who.organization_id, transfer_id)
    if row is None:
        raise NotFound("transaction not found")
    check_may_cancel(who, row)
    asked = None if amount_text is None else parse_amount(amount_text, row["currency"])
    ending = HoldEnding(action, asked, key)
    if is_replay(row, ending):
        return Stored(row, replayed=True)
    amount = captured_amount(row, ending)
    (ended,) = _write(conn, [(row, ending, amount)])
    _audit(conn, acting.audit, ended)
    return Stored(ended, replayed=False)


def expire_overdue(engine: Engine, limit: int = EXPIRE_BATCH) -> int:
    """Expire up to `limit` holds past their `hold_expires_at`; returns how many."""
    with engine.begin() as conn:
        rows = lock_overdue(conn, limit)
        if not rows:
            return 0
        ending = HoldEnding(HoldAction.EXPIRE)
        for ended in _write(conn, [(row, ending, None) for row in rows]):
            context = AuditContext(organization_id=ended["organization_id"])
            _audit(conn, context, ended)
    return len(rows)


def _write(
    conn: Connection, asked: list[tuple[Mapping[str, Any], HoldEnding, int | None]]
) -> list[dict[str, Any]]:
    transfers = [pending_of(row) for row, _, _ in asked]
    wallets = lock_wallets(conn, transfers)
    entries: list[Entry] = []
    for transfer, (_, _, amount) in zip(transfers, asked, strict=True):
        entries.extend(end_hold(transfer, amount, wallets))
    endings = [
        Ending(
            row,
            ENDED_AS[ending.action],
            amount,
            ending.key,
            None if ending.key is None else ending.request_hash(),
        )
        for row, ending, amount in asked
    ]
    return write_endings(conn, endings, entries, wallets)


def _audit(conn: Connection, context: AuditContext, row: Mapping[str, Any]) -> None:
    action = {"COMPLETED": "transfer.captured", "VOIDED": "transfer.voided"}.get(
        row["status"], "transfer.expired"
    )
    conn.execute(
        audit_insert(
            context,
            action,
            resource_type="transaction",
            resource_id=row["id"],
            details=transfer_audit_details(row),
        )
    )
