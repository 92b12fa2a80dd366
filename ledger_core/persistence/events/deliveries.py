"""A webhook delivery's life in the database: start an attempt, record it, find lost ones.

A delivery is PENDING until an attempt gets a 2xx (SUCCEEDED) or the last attempt fails
(FAILED). `attempts` counts attempts *started*: a worker locks the row, checks that the
message's attempt number is the next one, bumps the count and leases the row
(`next_attempt_at` in the future) before it makes the HTTP request without any lock
held. A duplicate message for the same attempt then finds the count already moved and
does nothing, so the same message delivered twice never POSTs twice.

`next_attempt_at` is also how lost work is found again from PostgreSQL: a PENDING
delivery whose time passed long ago (its broker message was lost, or its worker died
mid-request) is picked up by `dispatch_due_deliveries`, which the relay calls every
second. Redeliveries are created with `next_attempt_at = now()` and picked up the same way.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any
from uuid import UUID

import orjson
from sqlalchemy import Connection, text

from ledger_core.persistence.events.outbox import event_envelope
from ledger_core.persistence.pending_state import STILL_PENDING

_START = text("""
    SELECT d.id, d.status, d.attempts, d.event_id, w.url, w.secret,
           w.is_active AND w.deleted_at IS NULL AS webhook_live,
           o.type, o.organization_id, o.data, o.created_at
    FROM webhook_deliveries AS d
    JOIN webhooks AS w ON w.id = d.webhook_id
    JOIN outbox AS o ON o.event_id = d.event_id
    WHERE d.id = :id
    FOR UPDATE OF d
""")

_LEASE = text("""
    UPDATE webhook_deliveries
    SET attempts = :attempt, next_attempt_at = now() + make_interval(secs => :lease_s),
        updated_at = now()
    WHERE id = :id
""")

_GIVE_UP = text(f"""
    UPDATE webhook_deliveries
    SET status = 'FAILED', next_attempt_at = NULL, last_error = :error, updated_at = now()
    WHERE id = :id AND {STILL_PENDING}
""")

_RECORD_ATTEMPT = text("""
    INSERT INTO webhook_attempts (delivery_id, attempt, status_code, error, duration_ms)
    VALUES (:id, :attempt, :status_code, :error, :duration_ms)
""")

_FINISH = text(f"""
    UPDATE webhook_deliveries
    SET status = :status, last_status_code = :status_code, last_error = :error,
        next_attempt_at = now() + make_interval(secs => CAST(:delay_s AS double precision)),
        updated_at = now()
    WHERE id = :id AND attempts = :attempt AND {STILL_PENDING}
""")

_ABANDON_INTERRUPTED = text("""
    UPDATE webhook_deliveries
    SET status = 'FAILED', next_attempt_at = NULL, updated_at = now(),
        last_error = coalesce(last_error, 'the last attempt was interrupted')
    WHERE status = 'PENDING' AND attempts >= :max_attempts
      AND next_attempt_at <= now() - make_interval(secs => :grace_s)
""")

_DISPATCH = text("""
    UPDATE webhook_deliveries
    SET next_attempt_at = now() + make_interval(secs => :grace_s), updated_at = now()
    WHERE id IN (
        SELECT id FROM webhook_deliveries
        WHERE status = 'PENDING' AND next_attempt_at <= now() AND attempts < :max_attempts
          AND (attempts = 0 OR next_attempt_at <= now() - make_interval(secs => :grace_s))
        ORDER BY next_attempt_at
        LIMIT :limit
        FOR UPDATE SKIP LOCKED
    )
    RETURNING id, attempts
""")


@dataclass(frozen=True)
class AttemptPlan:
    """What one attempt sends: the event body (exact bytes) to the endpoint's URL."""

    delivery_id: UUID
    attempt: int
    event_id: UUID
    event_type: str
    url: str
    secret: str
    body: bytes


def _body(row: Any) -> bytes:
    envelope = event_envelope(
        row.event_id, row.type, row.created_at, row.organization_id, dict(row.data)
    )
    return orjson.dumps(envelope)


def start_attempt(
    conn: Connection, delivery_id: UUID, attempt: int, lease_s: float
) -> AttemptPlan | None:
    """Claim attempt `attempt` of a delivery, or None if it is not due (duplicate, done).

    A delivery whose webhook was deleted since is marked FAILED instead of being sent.
    """
    row = conn.execute(_START, {"id": delivery_id}).one_or_none()
    if row is None or row.status != "PENDING" or row.attempts != attempt - 1:
        return None
    if not row.webhook_live:
        conn.execute(_GIVE_UP, {"id": delivery_id, "error": "the webhook was deleted"})
        return None
    conn.execute(_LEASE, {"id": delivery_id, "attempt": attempt, "lease_s": lease_s})
    return AttemptPlan(
        delivery_id=delivery_id,
        attempt=attempt,
        event_id=row.event_id,
        event_type=row.type,
        url=row.url,
        secret=row.secret,
        body=_body(row),
    )


@dataclass(frozen=True)
class AttemptResult:
    """How one attempt went: the receiver's status code, or why there was none."""

    status_code: int | None
    error: str | None
    duration_ms: int


def finish_attempt(
    conn: Connection,
    delivery_id: UUID,
    attempt: int,
    result: AttemptResult,
    *,
    status: str,
    retry_in_ms: int | None,
) -> bool:
    """Record the attempt and move the delivery to `status` (PENDING with a retry time,
    SUCCEEDED or FAILED). False if the delivery had moved on meanwhile."""
    conn.execute(
        _RECORD_ATTEMPT,
        {
            "id": delivery_id,
            "attempt": attempt,
            "status_code": result.status_code,
            "error": result.error,
            "duration_ms": result.duration_ms,
        },
    )
    updated = conn.execute(
        _FINISH,
        {
            "id": delivery_id,
            "attempt": attempt,
            "status": status,
            "status_code": result.status_code,
            "error": result.error,
            "delay_s": None if retry_in_ms is None else retry_in_ms / 1000,  # NULL: no retry
        },
    )
    return updated.rowcount == 1


def dispatch_due_deliveries(
    conn: Connection, *, max_attempts: int, grace_s: float, limit: int = 500
) -> list[tuple[UUID, int]]:
    """Deliveries whose next attempt should be sent now: `(delivery_id, attempt)` pairs.

    New ones (no attempt yet, e.g. redeliveries) are due at once; retried ones only
    `grace_s` after their time, since their delayed broker message normally sends them
    then. Each is leased for `grace_s` so the next call does not send it again; the
    caller sends them after commit. Deliveries whose last attempt was interrupted are
    marked FAILED here.
    """
    params = {"max_attempts": max_attempts, "grace_s": grace_s}
    conn.execute(_ABANDON_INTERRUPTED, params)
    rows = conn.execute(_DISPATCH, {**params, "limit": limit}).all()
    return [(row.id, row.attempts + 1) for row in rows]


requeue_due_deliveries = dispatch_due_deliveries
"""The name the scheduler knows it by: the same rescue, safe to call from any process."""
