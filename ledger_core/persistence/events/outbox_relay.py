"""The outbox relay's SQL: read committed events by position, then move the position.

The outbox is insert-only. The relay's progress is one row, `outbox_relay_cursor`: the id
of the last event it published. A relay works on one batch in one transaction: it locks
that row (a second relay waits for it, so relays take turns and the stream keeps the
outbox's order), reads the events after it in id order, publishes them, creates their
webhook deliveries and moves the position, then commits. A relay that dies mid-batch loses
its connection and PostgreSQL rolls the transaction back, position included, so the next
relay publishes that batch again; one that hangs is cut off by
`idle_in_transaction_session_timeout` (`VAULTCRAFT_OUTBOX_LEASE_S`). Events are relayed
at least once and none is lost.

An id is drawn when its row is formed, and its transaction commits later, so an event can
become visible after one with a larger id: reading "everything after the position" could
pass an id whose transaction is still running and never come back for it. So the relay
publishes an event only if every id before it is accounted for: published already, or at
most the **settled** id, one up to which every transaction that drew an id has ended
(`publishable`). The relay finds a settled id with a horizon (`read_horizon`): the last
id drawn, and the transactions that might still hold one of those ids; once none of them
is in progress, that last id is settled. A gap left by a rolled-back transaction is passed
that way, and only a transaction running for long holds events after a gap back.

Deliveries and the position commit together, so a re-relayed event never creates a second
relayed delivery to an endpoint (the partial unique index of migration 0004 makes sure even
if two relays race).

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

_READ_HORIZON = "SELECT last_id, CAST(running AS text) FROM vaultcraft_outbox_horizon()"

_LOCK_POSITION = """
    SELECT position, NOT EXISTS (
        SELECT 1 FROM unnest(CAST(%(running)s AS xid8[])) AS x
        WHERE pg_xact_status(x) = 'in progress'
    )
    FROM outbox_relay_cursor
    FOR UPDATE
"""
"""The relay's position, locked until commit, and whether the horizon's transactions have
all ended. A statement of its own, before the events are read (`_READ_EVENTS`, sent in
the same round trip): the read's snapshot is then taken after every one of them ended, so
it sees all they committed."""

_READ_EVENTS = f"""
    SELECT o.id, o.event_id::text, o.organization_id::text, o.type,
           {ENVELOPE_SQL.format(t="o")}
    FROM outbox AS o
    WHERE o.id > (SELECT position FROM outbox_relay_cursor)
    ORDER BY o.id
    LIMIT %(limit)s
"""

_FINISH = """
    WITH moved AS (
        UPDATE outbox_relay_cursor SET position = %(position)s WHERE position <> %(position)s
    )
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

OUTBOX_BACKLOG_SQL = """
    SELECT count(o.id) AS backlog,
           extract(epoch FROM now() - min(o.created_at)) AS oldest_age
    FROM outbox_relay_cursor AS c LEFT JOIN outbox AS o ON o.id > c.position
"""
"""Events after the relay's position (`backlog`) and the age in seconds of the oldest of
them (`oldest_age`, NULL when none waits): one row."""

_BACKLOG = text(OUTBOX_BACKLOG_SQL)


class ClaimedEvent(NamedTuple):
    """One outbox event a relay batch publishes."""

    outbox_id: int
    event_id: str
    organization_id: str
    type: str
    event_json: str
    """The public event `{id, type, created_at, organization_id, data}` as JSON text."""


class Horizon(NamedTuple):
    """The last outbox id drawn when it was read, and the transactions that may still hold
    ids up to it (an `xid8[]` literal)."""

    last_id: int
    running: str


class Claim(NamedTuple):
    """What one relay batch holds: the events to publish, in order, and where the relay's
    position goes when the batch commits."""

    events: list[ClaimedEvent]
    previous: int
    position: int
    settled: bool
    """Every transaction of the horizon given has ended: its `last_id` is settled."""
    blocked: bool
    """An event after the batch is visible, but an id before it is not and is not
    settled: the batch stopped at that gap."""


def read_horizon(conn: psycopg.Connection[Any]) -> Horizon:
    """Read a horizon, on an autocommit connection: it takes a transaction id of its own
    and must end before its transactions are checked."""
    with conn.cursor() as cur:
        cur.execute(_READ_HORIZON)
        last_id, running = cur.fetchone() or (0, "{}")
        return Horizon(int(last_id), running)


def claim_events(
    conn: psycopg.Connection[Any], limit: int, horizon: Horizon | None = None
) -> Claim:
    """Lock the relay's position and take the events after it that may be published now,
    in the caller's transaction: publish them and `finish_events` before it commits."""
    with conn.pipeline(), conn.cursor() as lock, conn.cursor() as reader:
        lock.execute(_LOCK_POSITION, {"running": horizon.running if horizon else "{}"})
        reader.execute(_READ_EVENTS, {"limit": limit})
        position, ended = lock.fetchone() or (0, False)
        read = [ClaimedEvent(*row) for row in reader]
    settled = horizon is not None and ended
    settled_id = horizon.last_id if horizon is not None and settled else position
    events = publishable(read, position, settled_id)
    blocked = len(events) < len(read)
    moved = max(position, events[-1].outbox_id if events else position)
    if blocked or len(read) < limit:  # every visible id up to the settled one was read
        moved = max(moved, settled_id)
    return Claim(events, position, moved, settled, blocked)


def publishable(events: Sequence[ClaimedEvent], after: int, settled: int) -> list[ClaimedEvent]:
    """The leading events of `events` (visible, in id order, all after `after`) that may be
    published: every id up to `after` and up to `settled` is accounted for, so an event
    may go if its id is at most the larger of them, or follows the last one taken."""
    taken: list[ClaimedEvent] = []
    frontier = max(after, settled)
    for event in events:
        if event.outbox_id > frontier + 1:
            break
        taken.append(event)
        frontier = max(frontier, event.outbox_id)
    return taken


def finish_events(
    conn: psycopg.Connection[Any], claim: Claim, dispatch_lease_s: float
) -> list[str]:
    """Create the batch's webhook deliveries and move the relay's position, in the caller's
    transaction.

    Returns the ids of the deliveries created now; the caller enqueues their first
    attempt after commit. Each is leased for `dispatch_lease_s`: if its message is lost,
    `dispatch_due_deliveries` sends it again once the lease runs out.
    """
    if not claim.events and claim.position == claim.previous:
        return []
    ids = pg_array([e.outbox_id for e in claim.events])
    params = {"ids": ids, "lease_s": dispatch_lease_s, "position": claim.position}
    with conn.cursor() as cur:
        cur.execute(_FINISH, params)
        return [row[0] for row in cur]


def outbox_backlog(conn: Connection) -> tuple[int, float]:
    """Events after the relay's position, and the age in seconds of the oldest of them."""
    row = conn.execute(_BACKLOG).one()
    return int(row.backlog), float(row.oldest_age or 0.0)
