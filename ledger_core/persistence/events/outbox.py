"""The transactional outbox: events are written with the change they describe.

`outbox_insert` builds the INSERT so the caller runs it inside the same database
transaction as the state change; the relay publishes committed rows afterwards. The
event a subscriber receives is `event_envelope(...)`: `{id, type, created_at,
organization_id, data}` where `data` is the resource's public JSON.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any
from uuid import UUID

import orjson
from sqlalchemy import Insert, TextClause, text
from uuid_utils.compat import uuid7

from ledger_core.persistence.tables import outbox
from ledger_core.timestamps import rfc3339

TRANSFER_COMPLETED = "transfer.completed"
TRANSFER_FAILED = "transfer.failed"
TRANSFER_CANCELLED = "transfer.cancelled"
TRANSFER_HELD = "transfer.held"
TRANSFER_CAPTURED = "transfer.captured"
TRANSFER_VOIDED = "transfer.voided"
TRANSFER_EXPIRED = "transfer.expired"
WALLET_STATUS_CHANGED = "wallet.status_changed"
SETTLEMENT_COMPLETED = "settlement.completed"
RECONCILIATION_DRIFT_DETECTED = "reconciliation.drift_detected"

EVENT_TYPES = frozenset(
    {
        TRANSFER_COMPLETED,
        TRANSFER_FAILED,
        TRANSFER_CANCELLED,
        TRANSFER_HELD,
        TRANSFER_CAPTURED,
        TRANSFER_VOIDED,
        TRANSFER_EXPIRED,
        WALLET_STATUS_CHANGED,
        SETTLEMENT_COMPLETED,
        RECONCILIATION_DRIFT_DETECTED,
    }
)


def outbox_insert(
    event_type: str,
    organization_id: UUID,
    data: dict[str, Any],
    *,
    event_id: UUID | None = None,
) -> Insert:
    """The INSERT of one event; `data` is the resource JSON as the API renders it."""
    if event_type not in EVENT_TYPES:
        raise ValueError(f"unknown event type {event_type!r}")
    return outbox.insert().values(
        event_id=event_id or uuid7(),
        organization_id=organization_id,
        type=event_type,
        data=data,
    )


EventRow = tuple[UUID, str, dict[str, Any]]
"""(organization_id, event type, data) of one event to write."""

INSERT_EVENTS = text("""
    INSERT INTO outbox (organization_id, type, data)
    SELECT v.organization_id, v.type, CAST(v.data AS jsonb)
    FROM unnest(CAST(:organization_ids AS uuid[]), CAST(:types AS text[]),
                CAST(:data AS text[])) WITH ORDINALITY AS v(organization_id, type, data, n)
    ORDER BY v.n
""")


def event_json(data: dict[str, Any]) -> str:
    return orjson.dumps(data).decode()


def outbox_insert_many(events: Sequence[EventRow]) -> tuple[TextClause, dict[str, Any]]:
    """One set-based INSERT of many events, in order, for the caller's transaction."""
    return INSERT_EVENTS, {
        "organization_ids": [org for org, _, _ in events],
        "types": [kind for _, kind, _ in events],
        "data": [event_json(data) for _, _, data in events],
    }


def event_envelope(
    event_id: UUID,
    event_type: str,
    created_at: datetime,
    organization_id: UUID,
    data: dict[str, Any],
) -> dict[str, Any]:
    """The event as subscribers receive it."""
    return {
        "id": str(event_id),
        "type": event_type,
        "created_at": rfc3339(created_at),
        "organization_id": str(organization_id),
        "data": data,
    }
