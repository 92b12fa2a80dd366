"""The SQL of cancelling and reversing transfers, each in the caller's database transaction.

Decisions (who may cancel, what may be reversed) are in `ledger_core.transfer_rules`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any
from uuid import UUID

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection

from ledger_core.persistence.pending_state import STILL_PENDING
from ledger_core.persistence.transfers.ledger_writes import final_statements

CANCEL = text(f"""
    UPDATE transactions SET status = 'CANCELLED', cancelled_at = now()
    WHERE (id = :id OR atomic_group_id = :group) AND {STILL_PENDING}
    RETURNING *
""")
"""Cancels the transfer (or its atomic batch) if still PENDING."""

LOCK_LEADER = text("SELECT id FROM transactions WHERE id = :id FOR NO KEY UPDATE")


async def cancel_pending(conn: AsyncConnection, found: Mapping[str, Any]) -> list[dict[str, Any]]:
    """Cancel `found` (all of its atomic batch) if still PENDING; its new row, or nothing.

    Posting claims a transfer under its row lock and moves it out of PENDING in the same
    database transaction, so the conditional UPDATE here either wins (CANCELLED) or finds
    the transfer already final: never both. Atomic batches are locked through their
    leader first, in the same order the posting claim uses.
    """
    group = found["atomic_group_id"]
    if group is not None:
        await conn.execute(LOCK_LEADER, {"id": group})
    rows = [
        dict(r._mapping) for r in await conn.execute(CANCEL, {"id": found["id"], "group": group})
    ]
    for statement, params in final_statements(rows):
        await conn.execute(statement, params)
    return [row for row in rows if row["id"] == found["id"]]


LOCK_ORIGINAL = text("""
    SELECT * FROM transactions WHERE id = :id AND organization_id = :org FOR NO KEY UPDATE
""")

REVERSED_SO_FAR = text("""
    SELECT coalesce(sum(amount), 0) AS total FROM transactions
    WHERE reverses_transaction_id = :id AND status IN ('PENDING', 'COMPLETED')
""")

KEY_USED = text("""
    SELECT 1 FROM transactions WHERE organization_id = :org AND idempotency_key = :key
""")


async def lock_original(
    conn: AsyncConnection, organization_id: UUID, transfer_id: UUID
) -> dict[str, Any] | None:
    """The organization's transfer, locked so racing reversals of it are serialized."""
    row = (await conn.execute(LOCK_ORIGINAL, {"id": transfer_id, "org": organization_id})).first()
    return None if row is None else dict(row._mapping)


async def reversed_so_far(conn: AsyncConnection, transfer_id: UUID) -> int:
    """Minor units already reversed (or pending reversal) of a transfer."""
    return int((await conn.execute(REVERSED_SO_FAR, {"id": transfer_id})).scalar_one())


async def key_used(conn: AsyncConnection, organization_id: UUID, key: str) -> bool:
    found = await conn.execute(KEY_USED, {"org": organization_id, "key": key})
    return found.first() is not None
