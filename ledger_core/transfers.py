"""The public shape of a transaction, shared by the API and the events that report it."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any
from uuid import UUID

from ledger_core.ids import uuid_text
from ledger_core.money import format_amount
from ledger_core.timestamps import rfc3339_or_none as rfc3339

FINAL_STATUSES = frozenset({"COMPLETED", "FAILED", "CANCELLED", "VOIDED", "EXPIRED"})
DECIDED_STATUSES = FINAL_STATUSES | {"HELD"}
"""Where a long poll stops waiting: final, or a hold in place."""


def transaction_view(
    row: Mapping[str, Any],
    viewer_organization_id: UUID | None = None,
    *,
    ids: Callable[[UUID], Any] = uuid_text,
) -> dict[str, Any]:
    """Render a `transactions` row for a viewer.

    The payee of a cross-organization transfer sees its own side only: the payer's wallet
    is hidden from it. The payee of a multi-leg transaction sees only the legs into its
    organization, without their source wallets, and the transaction's wallets, amount and
    currency are those of its first leg: the payer's other legs, and its other payees,
    stay the payer's business.

    `ids` renders the row's UUIDs: a view only ever written by orjson, which writes a UUID
    as its text, may keep them as they are (`as_is`) and skip converting each.
    """
    payee = viewer_organization_id is not None and viewer_organization_id != row["organization_id"]
    hide_source = payee and row["kind"] in ("CROSS_ORG", "MULTI")
    legs = _visible_legs(row, viewer_organization_id if payee else None)
    first = legs[0] if legs else None
    reverses, group = row["reverses_transaction_id"], row["atomic_group_id"]
    return {
        "id": ids(row["id"]),
        "organization_id": ids(row["organization_id"]),
        "destination_organization_id": uuid_text(_leg_payee(first, row))
        if first
        else ids(row["destination_organization_id"]),
        "idempotency_key": None if hide_source else row["idempotency_key"],
        "kind": row["kind"],
        "source_wallet_id": None if hide_source else ids(row["source_wallet_id"]),
        "destination_wallet_id": str(first["destination_wallet_id"])
        if first
        else ids(row["destination_wallet_id"]),
        "amount": format_amount(*_amount(first, row)),
        "currency": first["currency"] if first else row["currency"],
        "status": row["status"],
        "failure_code": row["failure_code"],
        "failure_message": row["failure_message"],
        "description": row["description"],
        "metadata": {} if hide_source else (row["metadata"] or {}),
        "reference": None if hide_source else row.get("reference"),
        "reverses_transaction_id": None if reverses is None else ids(reverses),
        "atomic_group_id": None if group is None else ids(group),
        "created_at": rfc3339(row["created_at"]),
        "posted_at": rfc3339(row["posted_at"]),
        "cancelled_at": rfc3339(row["cancelled_at"]),
        "failed_at": rfc3339(row["failed_at"]),
        "hold_amount": _hold_amount(row),
        "hold_expires_at": rfc3339(row.get("hold_expires_at")),
        "postings": None
        if row.get("postings") is None
        else [_leg_view(leg, payee) for leg in legs],
    }


def as_is(value: UUID) -> UUID:
    """A UUID left for the JSON writer (see `transaction_view`)."""
    return value


def _visible_legs(
    row: Mapping[str, Any], payee_organization_id: UUID | None
) -> list[Mapping[str, Any]]:
    """A multi-leg transaction's legs a viewer sees: all for the payer, a payee's own."""
    legs: list[Mapping[str, Any]] = row.get("postings") or []
    if payee_organization_id is None:
        return legs
    return [leg for leg in legs if _leg_payee(leg, row) == payee_organization_id]


def _leg_payee(leg: Mapping[str, Any], row: Mapping[str, Any]) -> UUID:
    payee = leg.get("destination_organization_id")
    return row["organization_id"] if payee is None else UUID(str(payee))


def _amount(leg: Mapping[str, Any] | None, row: Mapping[str, Any]) -> tuple[int, str]:
    if leg is None:
        return int(row["amount"]), row["currency"]
    return int(leg["amount"]), leg["currency"]


def _leg_view(leg: Mapping[str, Any], payee: bool) -> dict[str, Any]:
    """A leg as the API shows it: wallets, amount and currency (its clearing wallets and
    payee organization stay internal, as a cross-org transfer's do)."""
    return {
        "source_wallet_id": None if payee else leg["source_wallet_id"],
        "destination_wallet_id": leg["destination_wallet_id"],
        "amount": format_amount(leg["amount"], leg["currency"]),
        "currency": leg["currency"],
    }


def leg_payees(row: Mapping[str, Any]) -> list[UUID]:
    """The other organizations a multi-leg transaction pays into, in leg order."""
    return list(
        dict.fromkeys(
            _leg_payee(leg, row)
            for leg in row.get("postings") or ()
            if leg.get("destination_organization_id") is not None
        )
    )


def parties(row: Mapping[str, Any]) -> list[UUID]:
    """Every organization a transaction involves: the payer first, then each payee."""
    return list(
        dict.fromkeys(
            [row["organization_id"], row["destination_organization_id"], *leg_payees(row)]
        )
    )


def _hold_amount(row: Mapping[str, Any]) -> str | None:
    held = row.get("hold_amount")
    return None if held is None else format_amount(held, row["currency"])


def event_type(row: Mapping[str, Any]) -> str:
    """The event reporting the state a transaction just reached; a captured hold's is
    `transfer.captured`."""
    if row["status"] == "COMPLETED" and row.get("hold_amount") is not None:
        return "transfer.captured"
    return _EVENT_TYPES[row["status"]]


_EVENT_TYPES = {
    "COMPLETED": "transfer.completed",
    "FAILED": "transfer.failed",
    "CANCELLED": "transfer.cancelled",
    "HELD": "transfer.held",
    "VOIDED": "transfer.voided",
    "EXPIRED": "transfer.expired",
}


def transfer_audit_details(row: Mapping[str, Any]) -> dict[str, Any]:
    """What an audit record says of a transfer: who pays whom, how much."""
    return {
        "kind": row["kind"],
        "amount": format_amount(row["amount"], row["currency"]),
        "currency": row["currency"],
        "source_wallet_id": uuid_text(row["source_wallet_id"]),
        "destination_wallet_id": uuid_text(row["destination_wallet_id"]),
        "idempotency_key": row["idempotency_key"],
    }
