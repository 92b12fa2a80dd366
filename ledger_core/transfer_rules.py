"""Who may cancel a transfer, which transfers can be reversed, and by how much.

Plain decisions over rows already read; the SQL that reads and locks them lives in
`ledger_core.persistence.transfers.changes`, the order of the steps in
`ledger_core.services.transfers`.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from typing import Any
from uuid import UUID

from ledger_core.accounts import Principal
from ledger_core.errors import (
    Forbidden,
    NotCancellable,
    NotFound,
    NotReversible,
    ReversalExceedsOriginal,
)
from ledger_core.intents import TransferIntent
from ledger_core.money import format_amount
from ledger_core.transfers import parties


def check_may_cancel(actor: Principal, found: Mapping[str, Any]) -> None:
    """Only the payer's organization cancels, and inside it the admin or the payer."""
    if found["organization_id"] != actor.organization_id:
        raise NotFound("transaction not found")
    if not actor.is_admin and found["source_user_id"] != actor.user_id:
        raise Forbidden("only the payer may cancel a transfer")


def not_cancellable(found: Mapping[str, Any]) -> NotCancellable:
    """The refusal for a cancel that found the transfer already out of PENDING."""
    status = found["status"] if found["status"] != "PENDING" else "already final"
    return NotCancellable(f"transaction is {status}")


def check_reversible(original: Mapping[str, Any] | None) -> Mapping[str, Any]:
    """A completed transfer inside one organization; cross-organization ones are not."""
    if original is None:
        raise NotFound("transaction not found")
    if original["status"] != "COMPLETED":
        raise NotReversible(
            f"only completed transfers can be reversed; this one is {original['status']}"
        )
    if original["kind"] != "TRANSFER":
        raise NotReversible(
            "a cross-organization transfer is reversed by the payee sending it back"
        )
    return original


def reversal_amount(
    original_amount: int, reversed_so_far: int, asked: int | None, currency: str
) -> int:
    """What a reversal moves: `asked`, or all that remains; never more than remains."""
    remaining = original_amount - reversed_so_far
    wanted = asked if asked is not None else remaining
    if wanted <= 0 or wanted > remaining:
        raise ReversalExceedsOriginal(
            f"{format_amount(remaining, currency)} {currency} of the original remain reversible",
            field="amount",
        )
    return wanted


def reversal_fingerprint(original_id: UUID, asked: int | None) -> str:
    """A reversal replays by what was asked (which original, which amount or "the rest")."""
    text = f"reverse:{original_id}:{'rest' if asked is None else asked}"
    return hashlib.sha256(text.encode()).hexdigest()


def reversal(
    original: Mapping[str, Any], amount: int, key: str, asked: int | None
) -> TransferIntent:
    """The transfer from the original's destination back to its source."""
    return TransferIntent(
        fingerprint=reversal_fingerprint(original["id"], asked),
        idempotency_key=key,
        source_wallet_id=original["destination_wallet_id"],
        destination_wallet_id=original["source_wallet_id"],
        amount=amount,
        currency=original["currency"],
        description=f"Reversal of {original['id']}",
        reverses_transaction_id=original["id"],
    )


def visible_to(row: dict[str, Any] | None, actor: Principal) -> dict[str, Any]:
    """The row if the actor may read it: 404 unless their organization is party to it (as if
    it did not exist), 403 for a member whose wallets it does not touch."""
    if row is None or actor.organization_id not in parties(row):
        raise NotFound("transaction not found")
    if not actor.is_admin and actor.user_id not in _member_side(row, actor):
        raise Forbidden("this transaction does not involve your wallets")
    return row


def _member_side(row: Mapping[str, Any], actor: Principal) -> set[UUID | None]:
    users = set()
    if row["organization_id"] == actor.organization_id:
        users.add(row["source_user_id"])
    if row["destination_organization_id"] == actor.organization_id:
        users.add(row["destination_user_id"])
    # Every leg's wallet owners: a payee's members own only wallets of the payee.
    users.update(row.get("leg_user_ids") or ())
    return users
