"""The outbox relay's SQL: take committed events, then record that they were relayed.

A relay works on one batch in one transaction: one statement locks up to a batch of
unrelayed events (`FOR UPDATE SKIP LOCKED`, oldest first, so several relays share the work
and none takes a row another is publishing), marks them relayed and hands each back as the
text the relay publishes; the relay publishes them, creates their webhook deliveries, then
commits. Each event row is written once more after its insert (the `relayed_at` mark) and
no lease is written. A relay that dies mid-batch loses its connection, PostgreSQL rolls
its transaction back (the mark with it) and the rows are free at once; one that hangs is
cut off by `idle_in_transaction_session_timeout` (the relay sets it to
`VAULTCRAFT_OUTBOX_LEASE_S`). Events are therefore relayed at least once and none is lost.

Deliveries and the relayed mark commit together, so a re-relayed event never creates a
second relayed delivery to an endpoint (the partial unique index of migration 0004 makes
sure even if two relays race).

These statements run on the relay's own psycopg connection: the server renders each
event's public JSON, so the relay neither decodes `data` nor encodes it again.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, NamedTuple

import psycopg
from sqlalchemy import Connection, text

from ledger_core.persistence.arrays import pg_array

OUTBOX_CHANNEL = "vaultcraft_outbox"
"""NOTIFYed by the outbox's insert trigger and by redeliveries: wakes the relay."""

ENVELOPE_SQL = """jsonb_build_object(
    'id', {t}.event_id,
    'type', {t}.type,
    'created_at', to_char({t}.created_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"'),
    'organization_id', {t}.organization_id,
    'data', {t}.data
)::text"""
"""The public event of an outbox row `{t}` as JSON text, the same object as
`outbox.event_envelope` (`created_at` in RFC 3339 with microseconds and a `Z`)."""

_CLAIM = f"""
    WITH taken AS (
        SELECT id FROM outbox
        WHERE relayed_at IS NULL
        ORDER BY id
        LIMIT %(limit)s
        FOR UPDATE SKIP LOCKED
    ), marked AS (
        UPDATE outbox AS o SET relayed_at = now()
        FROM taken WHERE o.id = taken.id
        RETURNING o.id, o.event_id, o.organization_id, o.type, o.data, o.created_at
    )
    SELECT m.id, m.event_id::text, m.organization_id::text, m.type,
           {ENVELOPE_SQL.format(t="m")}
    FROM marked AS m
    ORDER BY m.id
"""

_CREATE_DELIVERIES = """
    INSERT INTO webhook_deliveries (webhook_id, event_id, organization_id, next_attempt_at)
    SELECT w.id, o.event_id, o.organization_id, now() + make_interval(secs => %(lease_s)s)
    FROM outbox AS o
    JOIN webhooks AS w ON w.organization_id = o.organization_id
    WHERE o.id = ANY(CAST(%(ids)s AS bigint[]))
      AND w.is_active AND w.deleted_at IS NULL AND w.events ? o.type
    ORDER BY o.id, w.created_at
    ON CONFLICT (webhook_id, event_id) WHERE origin = 'RELAY' DO NOTHING
    RETURNING id::text
"""

_BACKLOG = text("""
    SELECT count(*) AS backlog,
           extract(epoch FROM now() - min(created_at)) AS oldest_age
    FROM outbox WHERE relayed_at IS NULL
""")


class ClaimedEvent(NamedTuple):
    """One outbox row this relay holds locked (and marked relayed) while it publishes it."""

    outbox_id: int
    event_id: str
    organization_id: str
    type: str
    event_json: str
    """The public event `{id, type, created_at, organization_id, data}` as JSON text."""


def claim_events(conn: psycopg.Connection[Any], limit: int) -> list[ClaimedEvent]:
    """Lock up to `limit` unrelayed events, oldest first, and mark them relayed, in the
    caller's transaction: publish them and `finish_events` before it commits."""
    with conn.cursor() as cur:
        cur.execute(_CLAIM, {"limit": limit})
        return [ClaimedEvent(*row) for row in cur]


def finish_events(
    conn: psycopg.Connection[Any], events: Sequence[ClaimedEvent], dispatch_lease_s: float
) -> list[str]:
    """Create the batch's webhook deliveries, in the caller's transaction.

    Returns the ids of the deliveries created now; the caller enqueues their first
    attempt after commit. Each is leased for `dispatch_lease_s`: if its message is lost,
    `dispatch_due_deliveries` sends it again once the lease runs out.
    """
    if not events:
        return []
    ids = pg_array([e.outbox_id for e in events])
    with conn.cursor() as cur:
        cur.execute(_CREATE_DELIVERIES, {"ids": ids, "lease_s": dispatch_lease_s})
        return [row[0] for row in cur]


def outbox_backlog(conn: Connection) -> tuple[int, float]:
    """Events not yet relayed, and the age in seconds of the oldest of them."""
    row = conn.execute(_BACKLOG).one()
    return int(row.backlog), float(row.oldest_age or 0.0)
