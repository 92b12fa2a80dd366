"""The public shape of a transaction, shared by the API and the events that report it."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any
from uuid import UUID

from ledger_core.money import format_amount

FINAL_STATUSES = frozenset({"COMPLETED", "FAILED", "CANCELLED"})


def rfc3339(value: datetime | None) -> str | None:
    """UTC timestamps as `2026-11-24T10:15:30.123456Z`."""
    if value is None:
        return None
    if value.utcoffset() is None:
        value = value.replace(tzinfo=UTC)
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


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
        "reverses_transaction_id": _str(row["reverses_transaction_id"]),
        "atomic_group_id": _str(row["atomic_group_id"]),
        "created_at": rfc3339(row["created_at"]),
        "posted_at": rfc3339(row["posted_at"]),
        "cancelled_at": rfc3339(row["cancelled_at"]),
        "failed_at": rfc3339(row["failed_at"]),
    }


def event_type(status: str) -> str:
    return {
        "COMPLETED": "transfer.completed",
        "FAILED": "transfer.failed",
        "CANCELLED": "transfer.cancelled",
    }[status]
