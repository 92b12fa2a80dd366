"""The outbox relay's SQL: take committed events, then record that they were relayed.

A relay works on one batch in one transaction: it locks up to a batch of unrelayed events
(`FOR UPDATE SKIP LOCKED`, oldest first, so several relays share the work and none takes
a row another is publishing), publishes them, creates their webhook deliveries and marks
them relayed, then commits. Each event row is written once more after its insert (the
`relayed_at` mark) and no lease is written. A relay that dies mid-batch loses its
connection, PostgreSQL rolls its transaction back and the rows are free at once; one that
hangs is cut off by `idle_in_transaction_session_timeout` (the relay sets it to
`VAULTCRAFT_OUTBOX_LEASE_S`). Events are therefore relayed at least once and none is lost.

Deliveries and the relayed mark commit together, so a re-relayed event never creates a
second relayed delivery to an endpoint (the partial unique index of migration 0004 makes
sure even if two relays race).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from uuid import UUID

from sqlalchemy import Connection, text

from ledger_core.persistence.arrays import pg_array
from ledger_core.persistence.events.outbox import event_envelope

OUTBOX_CHANNEL = "vaultcraft_outbox"
"""NOTIFYed by the outbox's insert trigger and by redeliveries: wakes the relay."""

_TAKE = text("""
    SELECT id, event_id, organization_id, type, data, created_at
    FROM outbox
    WHERE relayed_at IS NULL
    ORDER BY id
    LIMIT :limit
    FOR UPDATE SKIP LOCKED
""")

_CREATE_DELIVERIES = text("""
    INSERT INTO webhook_deliveries (webhook_id, event_id, organization_id, next_attempt_at)
    SELECT w.id, o.event_id, o.organization_id, now() + make_interval(secs => :lease_s)
    FROM outbox AS o
    JOIN webhooks AS w ON w.organization_id = o.organization_id
    WHERE o.id = ANY(CAST(:ids AS bigint[]))
      AND w.is_active AND w.deleted_at IS NULL AND w.events ? o.type
    ORDER BY o.id, w.created_at
    ON CONFLICT (webhook_id, event_id) WHERE origin = 'RELAY' DO NOTHING
    RETURNING id
""")

_MARK_RELAYED = text("""
    UPDATE outbox SET relayed_at = now()
    WHERE id = ANY(CAST(:ids AS bigint[])) AND relayed_at IS NULL
""")

_BACKLOG = text("""
    SELECT count(*) AS backlog,
           extract(epoch FROM now() - min(created_at)) AS oldest_age
    FROM outbox WHERE relayed_at IS NULL
""")


@dataclass(frozen=True)
class ClaimedEvent:
    """One outbox row this relay holds locked while it publishes it."""

    outbox_id: int
    event_id: UUID
    organization_id: UUID
    type: str
    data: dict[str, Any]
    created_at: datetime

    def envelope(self) -> dict[str, Any]:
        """The public event: `{id, type, created_at, organization_id, data}`."""
        return event_envelope(
            self.event_id, self.type, self.created_at, self.organization_id, self.data
        )


def claim_events(conn: Connection, limit: int) -> list[ClaimedEvent]:
    """Lock up to `limit` unrelayed events, oldest first, in the caller's transaction: publish
    them and `finish_events` before it commits."""
    return [
        ClaimedEvent(
            outbox_id=r.id,
            event_id=r.event_id,
            organization_id=r.organization_id,
            type=r.type,
            data=dict(r.data),
            created_at=r.created_at,
        )
        for r in conn.execute(_TAKE, {"limit": limit})
    ]


def finish_events(
    conn: Connection, events: Sequence[ClaimedEvent], dispatch_lease_s: float
) -> list[UUID]:
    """Create the batch's webhook deliveries and mark its events relayed.

    Returns the ids of the deliveries created now; the caller enqueues their first
    attempt after commit. Each is leased for `dispatch_lease_s`: if its message is lost,
    `dispatch_due_deliveries` sends it again once the lease runs out.
    """
    ids = [e.outbox_id for e in events]
    if not ids:
        return []
    id_array = pg_array(ids)
    created = conn.execute(_CREATE_DELIVERIES, {"ids": id_array, "lease_s": dispatch_lease_s})
    delivery_ids = [row.id for row in created]
    conn.execute(_MARK_RELAYED, {"ids": id_array})
    return delivery_ids


def outbox_backlog(conn: Connection) -> tuple[int, float]:
    """Events not yet relayed, and the age in seconds of the oldest of them."""
    row = conn.execute(_BACKLOG).one()
    return int(row.backlog), float(row.oldest_age or 0.0)
