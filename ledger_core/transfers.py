"""The public shape of a transaction, shared by the API and the events that report it."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any
from uuid import UUID

from ledger_core.money import format_amount
from ledger_core.timestamps import rfc3339_or_none as rfc3339

FINAL_STATUSES = frozenset({"COMPLETED", "FAILED", "CANCELLED", "VOIDED", "EXPIRED"})
DECIDED_STATUSES = FINAL_STATUSES | {"HELD"}
"""Where a long poll stops waiting: final, or a hold in place."""


def _str(value: UUID | None) -> str | None:
    return None if value is None else str(value)


def transaction_view(
    row: Mapping[str, Any], viewer_organization_id: UUID | None = None
) -> dict[str, Any]:
    """Render a `transactions` row for a viewer.

    The payee of a cross-organization transfer sees its own side only: the payer's wallet
    is hidden from it.
    """
    hide_source = (
        viewer_organization_id is not None
        and row["kind"] == "CROSS_ORG"
        and viewer_organization_id != row["organization_id"]
    )
    return {
        "id": str(row["id"]),
        "organization_id": str(row["organization_id"]),
        "destination_organization_id": str(row["destination_organization_id"]),
        "idempotency_key": None if hide_source else row["idempotency_key"],
        "kind": row["kind"],
        "source_wallet_id": None if hide_source else str(row["source_wallet_id"]),
        "destination_wallet_id": str(row["destination_wallet_id"]),
        "amount": format_amount(row["amount"], row["currency"]),
        "currency": row["currency"],
        "status": row["status"],
        "failure_code": row["failure_code"],
        "failure_message": row["failure_message"],
        "description": row["description"],
        "metadata": {} if hide_source else (row["metadata"] or {}),
        "reference": None if hide_source else row.get("reference"),
        "reverses_transaction_id": _str(row["reverses_transaction_id"]),
        "atomic_group_id": _str(row["atomic_group_id"]),
        "created_at": rfc3339(row["created_at"]),
        "posted_at": rfc3339(row["posted_at"]),
        "cancelled_at": rfc3339(row["cancelled_at"]),
        "failed_at": rfc3339(row["failed_at"]),
        "hold_amount": _hold_amount(row),
        "hold_expires_at": rfc3339(row.get("hold_expires_at")),
        "postings": _postings(row.get("postings")),
    }


def _postings(stored: list[dict[str, Any]] | None) -> list[dict[str, Any]] | None:
    if stored is None:
        return None
    return [dict(leg, amount=format_amount(leg["amount"], leg["currency"])) for leg in stored]


def _hold_amount(row: Mapping[str, Any]) -> str | None:
    held = row.get("hold_amount")
    return None if held is None else format_amount(held, row["currency"])


def event_type(row: Mapping[str, Any]) -> str:
    """The event reporting the state a transaction just reached; a captured hold's is
    `transfer.captured`."""
    if row["status"] == "COMPLETED" and row.get("hold_amount") is not None:
        return "transfer.captured"
    return {
        "COMPLETED": "transfer.completed",
        "FAILED": "transfer.failed",
        "CANCELLED": "transfer.cancelled",
        "HELD": "transfer.held",
        "VOIDED": "transfer.voided",
        "EXPIRED": "transfer.expired",
    }[row["status"]]


def transfer_audit_details(row: Mapping[str, Any]) -> dict[str, Any]:
    """What an audit record says of a transfer: who pays whom, how much."""
    return {
        "kind": row["kind"],
        "amount": format_amount(row["amount"], row["currency"]),
        "currency": row["currency"],
        "source_wallet_id": str(row["source_wallet_id"]),
        "destination_wallet_id": str(row["destination_wallet_id"]),
        "idempotency_key": row["idempotency_key"],
    }
