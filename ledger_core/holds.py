"""Holds: how a HELD transfer ends (captured, voided or expired) and what that writes.

Pure decisions over rows and wallet states already locked. A capture or a void is first
an intent (`ActionRequest`, checked by the gateway and stored PENDING); a posting batch
then decides it (`decide_actions`) under the hold's row lock and its wallets' locks, in
the posting order. A hold reserves its amount on the source wallet (`held`) without
writing entries; it ends exactly once, releasing the reservation, and a capture then posts
the captured amount like any transfer. The SQL is in `ledger_core.persistence.transfers.
holds` and `hold_actions`.

Risk rules are applied when the hold is placed (an open hold counts in its source's
`WINDOW_DEBITS` usage), not again at capture: like a card authorization, an approved hold
is a promise to pay up to its amount, so a capture within it is never declined for a
limit. The ledger's own rules (wallets active, balances in range) are checked again, as
the books must still be writable.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from enum import StrEnum
from typing import Any
from uuid import UUID

from ledger_core.errors import CaptureExceedsHold, DomainError, NotHeld
from ledger_core.money import format_amount
from ledger_core.posting import Entry, PendingTransfer, WalletState, check_transfer, entries_for
from ledger_core.timestamps import rfc3339, rfc3339_or_none

MAX_HOLD_EXPIRES_S = 30 * 24 * 3600
"""A hold is voided after at most 30 days."""

NOT_HELD = "not_held"
CAPTURE_EXCEEDS_HOLD = "capture_exceeds_hold"


class HoldAction(StrEnum):
    CAPTURE = "capture"
    VOID = "void"
    EXPIRE = "expire"


ENDED_AS = {
    HoldAction.CAPTURE: "COMPLETED",
    HoldAction.VOID: "VOIDED",
    HoldAction.EXPIRE: "EXPIRED",
}


def check_hold_expiry(seconds: int) -> int:
    if not 1 <= seconds <= MAX_HOLD_EXPIRES_S:
        raise DomainError(
            f"hold_expires_in_s must be between 1 and {MAX_HOLD_EXPIRES_S}",
            field="hold_expires_in_s",
        )
    return seconds


@dataclass(frozen=True)
class ActionRequest:
    """A capture (of `amount`, None: all of the hold) or a void asked of one hold."""

    transaction_id: UUID
    action: HoldAction
    amount: int | None
    key: str

    def request_hash(self) -> str:
        amount = "" if self.amount is None else str(self.amount)
        canonical = f"{self.transaction_id}:{self.action.value}:{amount}"
        return hashlib.sha256(canonical.encode()).hexdigest()


def check_request(hold: Mapping[str, Any], request: ActionRequest) -> None:
    """What the gateway checks before storing the intent: the hold is HELD now and a
    capture stays within it. The worker checks both again when it decides."""
    if hold["status"] != "HELD":
        raise NotHeld(f"transaction is {hold['status']}, not HELD")
    if request.amount is not None and request.amount > int(hold["hold_amount"]):
        raise CaptureExceedsHold("a capture takes at most the amount held", field="amount")


@dataclass(frozen=True, slots=True)
class PendingAction:
    """A stored capture or void, as a posting batch decides it."""

    id: UUID
    seq: int
    organization_id: UUID
    transaction_id: UUID
    action: HoldAction
    amount: int | None
    idempotency_key: str
    request_hash: str
    created_by: UUID | None = None


@dataclass(frozen=True, slots=True)
class ActionOutcome:
    """What a batch decided: the action COMPLETED (the hold ends as `ended_as`, posting
    `captured`) or FAILED (the hold is left as it was)."""

    action: PendingAction
    status: str
    failure_code: str | None = None
    failure_message: str | None = None
    ended_as: str | None = None
    captured: int | None = None

    @property
    def completed(self) -> bool:
        return self.status == "COMPLETED"


@dataclass(slots=True)
class ActionPlan:
    outcomes: list[ActionOutcome] = field(default_factory=list)
    entries: list[Entry] = field(default_factory=list)


def decide_actions(
    actions: Sequence[PendingAction],
    holds: Mapping[UUID, tuple[PendingTransfer, str]],
    wallets: Mapping[UUID, WalletState],
) -> ActionPlan:
    """Decide every action in submission order; the first to find its hold HELD ends it.

    `holds` maps each hold's id to the hold and its status as locked; `wallets` is mutated
    to the balances and open holds after the batch's endings.
    """
    status = {hold_id: s for hold_id, (_, s) in holds.items()}
    plan = ActionPlan()
    for action in sorted(actions, key=lambda a: a.seq):
        hold, _ = holds[action.transaction_id]
        outcome, entries = _decide(action, hold, status[action.transaction_id], wallets)
        if outcome.ended_as is not None:
            status[action.transaction_id] = outcome.ended_as
        plan.outcomes.append(outcome)
        plan.entries.extend(entries)
    return plan


def _decide(
    action: PendingAction, hold: PendingTransfer, status: str, wallets: Mapping[UUID, WalletState]
) -> tuple[ActionOutcome, list[Entry]]:
    if status != "HELD":
        return ActionOutcome(action, "FAILED", NOT_HELD, f"transaction is {status}, not HELD"), []
    assert hold.hold_amount is not None
    if action.action is HoldAction.VOID:
        end_hold(hold, None, wallets)
        return ActionOutcome(action, "COMPLETED", ended_as="VOIDED"), []
    amount = hold.hold_amount if action.amount is None else action.amount
    if amount > hold.hold_amount:
        message = "a capture takes at most the amount held"
        return ActionOutcome(action, "FAILED", CAPTURE_EXCEEDS_HOLD, message), []
    source = wallets[hold.source_wallet_id]
    source.held -= hold.hold_amount
    refusal = check_transfer(replace(hold, amount=amount, hold_amount=None), wallets)
    if refusal is not None:
        source.held += hold.hold_amount
        return ActionOutcome(action, "FAILED", refusal.code, refusal.message), []
    entries = entries_for(hold, amount, wallets)
    return ActionOutcome(action, "COMPLETED", ended_as="COMPLETED", captured=amount), entries


def end_hold(
    transfer: PendingTransfer, amount: int | None, wallets: Mapping[UUID, WalletState]
) -> list[Entry]:
    """Release the reservation and, for a capture of `amount`, post it along the legs."""
    assert transfer.hold_amount is not None
    wallets[transfer.source_wallet_id].held -= transfer.hold_amount
    if amount is None:
        return []
    return entries_for(transfer, amount, wallets)


def action_view(row: Mapping[str, Any], currency: str) -> dict[str, Any]:
    """A stored capture or void as the API shows it (amounts in the hold's currency)."""
    amount = row["amount"]
    return {
        "id": str(row["id"]),
        "transaction_id": str(row["transaction_id"]),
        "action": str(row["action"]).lower(),
        "amount": None if amount is None else format_amount(amount, currency),
        "status": row["status"],
        "failure_code": row["failure_code"],
        "failure_message": row["failure_message"],
        "created_at": rfc3339(row["created_at"]),
        "decided_at": rfc3339_or_none(row["decided_at"]),
    }
