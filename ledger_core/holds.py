"""Holds: how a HELD transfer ends (captured, voided or expired) and what that writes.

Pure decisions over rows and wallet states already locked; the SQL is in
`ledger_core.persistence.transfers.holds`, the order of the steps in
`ledger_core.services.holds`. A hold reserves its amount on the source wallet (`held`)
without writing entries; it ends exactly once, releasing the reservation, and a capture
then posts the captured amount like any transfer.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any
from uuid import UUID

from ledger_core.errors import CaptureExceedsHold, DomainError, NotHeld
from ledger_core.posting import Entry, PendingTransfer, WalletState, entries_for

MAX_HOLD_EXPIRES_S = 30 * 24 * 3600
"""A hold is voided after at most 30 days."""


class HoldAction(StrEnum):
    CAPTURE = "capture"
    VOID = "void"
    EXPIRE = "expire"


ENDED_AS = {
    HoldAction.CAPTURE: "COMPLETED",
    HoldAction.VOID: "VOIDED",
    HoldAction.EXPIRE: "EXPIRED",
}


@dataclass(frozen=True)
class HoldEnding:
    """A request to end a hold; `amount` is what a capture takes (None: all of it)."""

    action: HoldAction
    amount: int | None = None
    key: str | None = None

    def request_hash(self) -> str:
        canonical = f"{self.action.value}:{'' if self.amount is None else self.amount}"
        return hashlib.sha256(canonical.encode()).hexdigest()


def check_hold_expiry(seconds: int) -> int:
    if not 1 <= seconds <= MAX_HOLD_EXPIRES_S:
        raise DomainError(
            f"hold_expires_in_s must be between 1 and {MAX_HOLD_EXPIRES_S}",
            field="hold_expires_in_s",
        )
    return seconds


def is_replay(row: Mapping[str, Any], ending: HoldEnding) -> bool:
    """Whether `ending` is the very request (same key, same body) that ended this hold.

    Anything else asked of a transaction that is not HELD is `not_held`.
    """
    if row["status"] == "HELD":
        return False
    if (
        ending.key is not None
        and row["hold_key"] == ending.key
        and row["hold_request_hash"] == ending.request_hash()
    ):
        return True
    raise NotHeld(f"transaction is {row['status']}, not HELD")


def captured_amount(row: Mapping[str, Any], ending: HoldEnding) -> int | None:
    """What the ending posts: the capture's amount (at most the hold), nothing otherwise."""
    if ending.action is not HoldAction.CAPTURE:
        return None
    hold = int(row["hold_amount"])
    if ending.amount is None:
        return hold
    if ending.amount > hold:
        raise CaptureExceedsHold("a capture takes at most the amount held", field="amount")
    return ending.amount


def end_hold(
    transfer: PendingTransfer, amount: int | None, wallets: Mapping[UUID, WalletState]
) -> list[Entry]:
    """Release the reservation and, for a capture of `amount`, post it along the legs.

    The capture needs no funds check: the reserved amount already counted against the
    source's available balance, and a capture never takes more than it.
    """
    assert transfer.hold_amount is not None
    wallets[transfer.source_wallet_id].held -= transfer.hold_amount
    if amount is None:
        return []
    return entries_for(transfer, amount, wallets)
