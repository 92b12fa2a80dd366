"""Holds: ask for a capture or a void (the payer's request), expire overdue holds (the
scheduler).

A capture or void is an intent, like a transfer: the request checks it (the hold is
visible to the payer, HELD, and a capture within it), stores it PENDING with its
idempotency key and answers `202`; a posting batch decides it under the hold's row lock
and its wallets' locks (`ledger_core.persistence.transfers.hold_actions`). The expiry
runs in its own unit of work: lock overdue holds (skipping any a batch holds), their
wallets in the posting order, release and mark them EXPIRED. A hold ends exactly once:
whoever takes its row lock first ends it; an action that comes later ends FAILED
`not_held`, and the expiry skips it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from uuid import UUID

from sqlalchemy import Connection, Engine
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from ledger_core.acting import Acting, AuditContext
from ledger_core.errors import IdempotencyKeyReused, NotFound
from ledger_core.holds import ActionRequest, HoldAction, check_request, end_hold
from ledger_core.money import parse_amount
from ledger_core.persistence.audit.records import audit_insert
from ledger_core.persistence.transfers.claim import pending_of
from ledger_core.persistence.transfers.hold_actions import (
    find_by_key,
    find_hold,
    insert_action,
    read_action,
)
from ledger_core.persistence.transfers.holds import Ending, lock_overdue, write_endings
from ledger_core.persistence.transfers.ledger_writes import lock_wallets
from ledger_core.transfer_rules import check_may_cancel
from ledger_core.transfers import transfer_audit_details

EXPIRE_BATCH = 500
"""Overdue holds expired per unit of work."""


@dataclass(frozen=True)
class StoredAction:
    """A capture or void as stored, the hold's currency, and whether this request only
    replayed it."""

    row: Mapping[str, Any]
    currency: str
    replayed: bool


async def request_action(
    engine: AsyncEngine,
    acting: Acting,
    transaction_id: UUID,
    action: HoldAction,
    key: str,
    amount: str | None = None,
) -> StoredAction:
    """Store a capture (`amount`, a decimal string, or all) or void of a HELD transfer as
    PENDING; the same request with the same key comes back `replayed`, whatever the hold
    has become since."""
    async with engine.begin() as conn:
        hold = await _payers_hold(conn, acting, transaction_id)
        asked = None if amount is None else parse_amount(amount, hold["currency"])
        request = ActionRequest(transaction_id, action, asked, key)
        org = acting.principal.organization_id
        earlier = await find_by_key(conn, org, key)
        if earlier is not None:
            return _replayed(earlier, request, hold["currency"])
        check_request(hold, request)
        row, existed = await insert_action(conn, org, acting.principal.user_id, request)
        if existed:
            return _replayed(row, request, hold["currency"])
        await conn.execute(
            audit_insert(
                acting.audit,
                f"transfer.{action.value}_requested",
                resource_type="transaction",
                resource_id=transaction_id,
                details={"hold_action_id": str(row["id"]), "amount": amount},
            )
        )
        return StoredAction(row, hold["currency"], replayed=False)


async def get_action(
    engine: AsyncEngine, acting: Acting, transaction_id: UUID, action_id: UUID
) -> StoredAction:
    """A capture or void, to the payer who may end the hold."""
    async with engine.connect() as conn:
        hold = await _payers_hold(conn, acting, transaction_id)
        row = await read_action(conn, acting.principal.organization_id, transaction_id, action_id)
    if row is None:
        raise NotFound("hold action not found")
    return StoredAction(row, hold["currency"], replayed=False)


async def _payers_hold(
    conn: AsyncConnection, acting: Acting, transaction_id: UUID
) -> dict[str, Any]:
    who = acting.principal
    hold = await find_hold(conn, who.organization_id, transaction_id)
    if hold is None:
        raise NotFound("transaction not found")
    check_may_cancel(who, hold)
    return hold


def _replayed(row: Mapping[str, Any], request: ActionRequest, currency: str) -> StoredAction:
    if row["request_hash"] != request.request_hash():
        raise IdempotencyKeyReused(
            f"Idempotency-Key {request.key!r} was already used with a different request",
            field="idempotency_key",
        )
    return StoredAction(row, currency, replayed=True)


def expire_overdue(engine: Engine, limit: int = EXPIRE_BATCH) -> int:
    """Expire up to `limit` holds past their `hold_expires_at`; returns how many."""
    with engine.begin() as conn:
        rows = lock_overdue(conn, limit)
        if not rows:
            return 0
        _expire(conn, rows)
    return len(rows)


def _expire(conn: Connection, rows: list[dict[str, Any]]) -> None:
    transfers = [pending_of(row) for row in rows]
    wallets = lock_wallets(conn, transfers)
    for transfer in transfers:
        end_hold(transfer, None, wallets)
    endings = [Ending(row, "EXPIRED", None) for row in rows]
    for ended in write_endings(conn, endings, [], wallets):
        conn.execute(
            audit_insert(
                AuditContext(organization_id=ended["organization_id"]),
                "transfer.expired",
                resource_type="transaction",
                resource_id=ended["id"],
                details=transfer_audit_details(ended),
            )
        )
