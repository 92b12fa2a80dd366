"""Cancelling and reversing transfers, each in the caller's database transaction."""

from __future__ import annotations

import hashlib
from typing import Any
from uuid import UUID

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection

from ledger_core.accounts import Principal
from ledger_core.errors import (
    Forbidden,
    NotCancellable,
    NotFound,
    NotReversible,
    ReversalExceedsOriginal,
)
from ledger_core.intents import TransferIntent
from ledger_core.persistence.posting import final_statements

CANCEL = text("""
    UPDATE transactions SET status = 'CANCELLED', cancelled_at = now()
    WHERE status = 'PENDING' AND (id = :id OR atomic_group_id = :group)
    RETURNING *
""")

LOCK_LEADER = text("SELECT id FROM transactions WHERE id = :id FOR NO KEY UPDATE")


async def cancel_transfer(
    conn: AsyncConnection, actor: Principal, found: dict[str, Any]
) -> list[dict[str, Any]]:
    """Cancel a PENDING transfer (all of its atomic batch); 409 if posting got there first.

    Posting claims a transfer under its row lock and moves it out of PENDING in the same
    database transaction, so the conditional UPDATE here either wins (CANCELLED) or finds
    the transfer already final (not cancellable): never both. Atomic batches are locked
    through their leader first, in the same order the posting claim uses.
    """
    if found["organization_id"] != actor.organization_id:
        raise NotFound("transaction not found")
    if not actor.is_admin and found["source_user_id"] != actor.user_id:
        raise Forbidden("only the payer may cancel a transfer")
    group = found["atomic_group_id"]
    if group is not None:
        await conn.execute(LOCK_LEADER, {"id": group})
    rows = list(await conn.execute(CANCEL, {"id": found["id"], "group": group}))
    if not rows:
        raise NotCancellable(
            f"transaction is {found['status'] if found['status'] != 'PENDING' else 'already final'}"
        )
    for statement, params in final_statements([dict(r._mapping) for r in rows]):
        await conn.execute(statement, params)
    return [dict(r._mapping) for r in rows if r.id == found["id"]]


LOCK_ORIGINAL = text("""
    SELECT * FROM transactions WHERE id = :id AND organization_id = :org FOR NO KEY UPDATE
""")

REVERSED_SO_FAR = text("""
    SELECT coalesce(sum(amount), 0) AS total FROM transactions
    WHERE reverses_transaction_id = :id AND status IN ('PENDING', 'COMPLETED')
""")


async def reversal_intent(
    conn: AsyncConnection, actor: Principal, original_id: UUID, amount: int | None, key: str
) -> TransferIntent:
    """The transfer that reverses (part of) a completed one.

    The original is locked while the reversal is checked and stored, so two reversals
    racing each other are serialized and together never exceed the original amount.
    A replay of an earlier reversal (same key) is recognised before the check.
    """
    row = (
        await conn.execute(LOCK_ORIGINAL, {"id": original_id, "org": actor.organization_id})
    ).first()
    if row is None:
        raise NotFound("transaction not found")
    original = row._mapping
    if original["status"] != "COMPLETED":
        raise NotReversible(
            f"only completed transfers can be reversed; this one is {original['status']}"
        )
    if original["kind"] != "TRANSFER":
        raise NotReversible(
            "a cross-organization transfer is reversed by the payee sending it back"
        )
    fingerprint = _fingerprint(original_id, amount)
    if await _key_used(conn, actor, key):
        return _reversal(original, int(original["amount"]), key, fingerprint)
    reversed_so_far = int((await conn.execute(REVERSED_SO_FAR, {"id": original_id})).scalar_one())
    remaining = int(original["amount"]) - reversed_so_far
    wanted = amount if amount is not None else remaining
    if wanted <= 0 or wanted > remaining:
        raise ReversalExceedsOriginal(
            f"{remaining} minor units of the original remain reversible", field="amount"
        )
    return _reversal(original, wanted, key, fingerprint)


KEY_USED = text("""
    SELECT 1 FROM transactions WHERE organization_id = :org AND idempotency_key = :key
""")


async def _key_used(conn: AsyncConnection, actor: Principal, key: str) -> bool:
    found = await conn.execute(KEY_USED, {"org": actor.organization_id, "key": key})
    return found.first() is not None


def _fingerprint(original_id: UUID, amount: int | None) -> str:
    """A reversal replays by what was asked (which original, which amount or "the rest")."""
    asked = f"reverse:{original_id}:{'rest' if amount is None else amount}"
    return hashlib.sha256(asked.encode()).hexdigest()


def _reversal(original: Any, amount: int, key: str, fingerprint: str) -> TransferIntent:
    return TransferIntent(
        fingerprint=fingerprint,
        idempotency_key=key,
        source_wallet_id=original["destination_wallet_id"],
        destination_wallet_id=original["source_wallet_id"],
        amount=amount,
        currency=original["currency"],
        description=f"Reversal of {original['id']}",
        reverses_transaction_id=original["id"],
    )
