"""Captures and voids: stored as intents by the gateway, decided in posting batches.

The gateway stores a capture or void PENDING with its idempotency key and wakes the
posting dispatcher, in the request's transaction (`insert_action`). A posting batch claims
waiting actions with `FOR NO KEY UPDATE SKIP LOCKED`, locks their holds' rows (skipping
any another writer holds: the action waits for the next batch), then the wallets in the
global order with the batch's transfers (`posting.free_subset`), and `end_claimed`
decides and writes them: the first action to find its hold HELD ends it, and every later
one, or one that meets a hold the expiry ended, ends FAILED `not_held`. The HELD guard of
`holds.END_HOLDS`, the action's PENDING guard and `uq_hold_actions_completed` make a
second ending impossible even if this logic were wrong.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any
from uuid import UUID

from psycopg.rows import dict_row
from sqlalchemy import Connection, text
from sqlalchemy.ext.asyncio import AsyncConnection

from ledger_core.channels import FINAL_CHANNEL, PENDING_CHANNEL
from ledger_core.final_notices import id_chunks
from ledger_core.holds import (
    ActionOutcome,
    ActionRequest,
    HoldAction,
    PendingAction,
    decide_actions,
)
from ledger_core.persistence.arrays import pg_array
from ledger_core.persistence.direct import Savepoint, fetch_all_sync
from ledger_core.persistence.pending_state import STILL_PENDING
from ledger_core.persistence.transfers.claim import pending_of
from ledger_core.persistence.transfers.conflicts import POSTING_ERROR, written_or_refused
from ledger_core.persistence.transfers.holds import Ending, write_endings
from ledger_core.persistence.transfers.ledger_writes import NOTIFY_FINAL, lock_wallets

log = logging.getLogger("vaultcraft.posting")

FIND_HOLD = text("""
    SELECT t.*, w.user_id AS source_user_id FROM transactions t
    JOIN wallets w ON w.id = t.source_wallet_id
    WHERE t.id = :id AND t.organization_id = :org
""")

FIND_BY_KEY = text("""
    SELECT * FROM hold_actions WHERE organization_id = :org AND idempotency_key = :key
""")

READ_ACTION = text("""
    SELECT * FROM hold_actions
    WHERE id = :id AND transaction_id = :transaction_id AND organization_id = :org
""")

INSERT_ACTION = text("""
    WITH inserted AS (
        INSERT INTO hold_actions
            (organization_id, transaction_id, action, amount, idempotency_key, request_hash,
             created_by)
        VALUES (:org, :transaction_id, :action, :amount, :key, :hash, :user_id)
        ON CONFLICT (organization_id, idempotency_key) DO NOTHING
        RETURNING *
    ), woken AS (
        SELECT pg_notify(:channel, '') AS sent FROM (SELECT 1 FROM inserted LIMIT 1) AS any_new
    )
    SELECT inserted.* FROM inserted CROSS JOIN (SELECT count(sent) FROM woken) AS w
""")
"""Stores the action and wakes the posting dispatcher at commit (see `intake.INSERT_INTENTS`
for why the wake-up's column is read). A used key inserts nothing."""

CLAIM_ACTIONS = text("""
    SELECT * FROM hold_actions WHERE status = 'PENDING'
    ORDER BY seq
    LIMIT :limit
    FOR NO KEY UPDATE SKIP LOCKED
""")

LOCK_HOLDS = text("""
    SELECT id FROM transactions WHERE id = ANY(CAST(:ids AS uuid[]))
    ORDER BY id
    FOR NO KEY UPDATE SKIP LOCKED
""")

READ_HOLDS = text("SELECT * FROM transactions WHERE id = ANY(CAST(:ids AS uuid[]))")

FINISH_ACTIONS = text(f"""
    UPDATE hold_actions AS a
    SET status = v.status, failure_code = v.code, failure_message = v.message, decided_at = now()
    FROM unnest(CAST(:ids AS uuid[]), CAST(:statuses AS text[]), CAST(:codes AS text[]),
                CAST(:messages AS text[])) AS v(id, status, code, message)
    WHERE a.id = v.id AND a.{STILL_PENDING}
    RETURNING a.id
""")
"""Decides claimed actions; the PENDING guard makes a second decision write nothing, which
`_finish` turns into a rolled-back write. The guard is `STILL_PENDING`: written plainly,
after a quiet ANALYZE it walked `ix_hold_actions_pending_seq` through a backlog of 30,000
waiting captures and voids to decide 50 of them."""


async def find_hold(
    conn: AsyncConnection, organization_id: UUID, transaction_id: UUID
) -> dict[str, Any] | None:
    """The payer's transaction with its source wallet's owner (no lock: the worker decides)."""
    params = {"id": transaction_id, "org": organization_id}
    row = (await conn.execute(FIND_HOLD, params)).one_or_none()
    return None if row is None else dict(row._mapping)


async def find_by_key(
    conn: AsyncConnection, organization_id: UUID, key: str
) -> dict[str, Any] | None:
    row = (await conn.execute(FIND_BY_KEY, {"org": organization_id, "key": key})).one_or_none()
    return None if row is None else dict(row._mapping)


async def read_action(
    conn: AsyncConnection, organization_id: UUID, transaction_id: UUID, action_id: UUID
) -> dict[str, Any] | None:
    params = {"id": action_id, "transaction_id": transaction_id, "org": organization_id}
    row = (await conn.execute(READ_ACTION, params)).one_or_none()
    return None if row is None else dict(row._mapping)


async def insert_action(
    conn: AsyncConnection, organization_id: UUID, user_id: UUID | None, request: ActionRequest
) -> tuple[dict[str, Any], bool]:
    """Store the action PENDING; returns the stored row and whether it already existed
    (another request with the same key committed first: the caller compares hashes)."""
    params = {
        "org": organization_id,
        "transaction_id": request.transaction_id,
        "action": request.action.value.upper(),
        "amount": request.amount,
        "key": request.key,
        "hash": request.request_hash(),
        "user_id": user_id,
        "channel": PENDING_CHANNEL,
    }
    row = (await conn.execute(INSERT_ACTION, params)).one_or_none()
    if row is not None:
        return dict(row._mapping), False
    existing = await find_by_key(conn, organization_id, request.key)
    assert existing is not None, "ON CONFLICT found the key, so the row exists"
    return existing, True


@dataclass(frozen=True)
class ClaimedActions:
    """Waiting actions this batch holds, their holds' rows locked (as locked: read again
    when deciding), and whether others may wait."""

    actions: list[PendingAction]
    holds: dict[UUID, dict[str, Any]]
    more: bool = False

    def wallet_ids(self, action: PendingAction) -> tuple[UUID, ...]:
        return pending_of(self.holds[action.transaction_id]).wallet_ids()

    def subset(self, actions: Sequence[PendingAction]) -> ClaimedActions:
        ids = {a.transaction_id for a in actions}
        return ClaimedActions(list(actions), {k: v for k, v in self.holds.items() if k in ids})


def _pending_action(row: Mapping[str, Any]) -> PendingAction:
    return PendingAction(
        id=row["id"],
        seq=row["seq"],
        organization_id=row["organization_id"],
        transaction_id=row["transaction_id"],
        action=HoldAction(str(row["action"]).lower()),
        amount=row["amount"],
        idempotency_key=row["idempotency_key"],
        request_hash=row["request_hash"],
        created_by=row["created_by"],
    )


def claim_actions(conn: Connection, limit: int) -> ClaimedActions:
    """Lock up to `limit` waiting actions and their holds; an action whose hold another
    writer holds (the expiry, another batch) stays PENDING for a later batch."""
    rows = fetch_all_sync(conn, CLAIM_ACTIONS, {"limit": limit}, dict_row)
    actions = [_pending_action(r) for r in rows]
    if not actions:
        return ClaimedActions([], {})
    ids = sorted({a.transaction_id for a in actions})
    locked = set(conn.execute(LOCK_HOLDS, {"ids": pg_array(ids)}).scalars())
    holds = _read_holds(conn, locked)
    ready = [a for a in actions if a.transaction_id in locked]
    return ClaimedActions(ready, holds, more=len(actions) >= limit or len(ready) < len(actions))


def _read_holds(conn: Connection, ids: set[UUID]) -> dict[UUID, dict[str, Any]]:
    if not ids:
        return {}
    rows = conn.execute(READ_HOLDS, {"ids": pg_array(sorted(ids))})
    return {r.id: dict(r._mapping) for r in rows}


@dataclass(frozen=True)
class Decided:
    """What a batch decided of its claimed actions, and each hold an action ended, as it
    now is (keyed by the action's id): what the use case audits."""

    outcomes: list[ActionOutcome] = field(default_factory=list)
    ended: dict[UUID, Mapping[str, Any]] = field(default_factory=dict)

    def __add__(self, other: Decided) -> Decided:
        return Decided(self.outcomes + other.outcomes, {**self.ended, **other.ended})


def end_claimed(conn: Connection, claimed: ClaimedActions) -> Decided:
    """Decide and write claimed actions, their wallets already locked by the batch.

    Like `posting.post_isolated`: under a savepoint, and should the database refuse the
    write, each action alone; one that still cannot be written ends FAILED
    `posting_error`, its hold left as it was.
    """
    decided = written_or_refused(Savepoint(conn, "actions"), lambda: _end(conn, claimed))
    if not isinstance(decided, Exception):
        return decided
    if len(claimed.actions) == 1:
        return _fail_unwritable(conn, claimed.actions[0], decided)
    return sum((end_claimed(conn, claimed.subset([a])) for a in claimed.actions), Decided())


def _end(conn: Connection, claimed: ClaimedActions) -> Decided:
    rows = _read_holds(conn, {a.transaction_id for a in claimed.actions})
    holds = {hold_id: (pending_of(row), row["status"]) for hold_id, row in rows.items()}
    wallets = lock_wallets(conn, [hold for hold, _ in holds.values()])
    plan = decide_actions(claimed.actions, holds, wallets)
    winners = [o for o in plan.outcomes if o.ended_as is not None]
    endings = [
        Ending(
            rows[o.action.transaction_id],
            o.ended_as or "",
            o.captured,
            o.action.idempotency_key,
            o.action.request_hash,
        )
        for o in winners
    ]
    ended = (
        {r["id"]: r for r in write_endings(conn, endings, plan.entries, wallets)} if endings else {}
    )
    _finish(conn, plan.outcomes)
    return Decided(plan.outcomes, {o.action.id: ended[o.action.transaction_id] for o in winners})


def _finish(conn: Connection, outcomes: Sequence[ActionOutcome]) -> None:
    params = {
        "ids": pg_array(o.action.id for o in outcomes),
        "statuses": pg_array(o.status for o in outcomes),
        "codes": pg_array(o.failure_code for o in outcomes),
        "messages": pg_array(o.failure_message for o in outcomes),
    }
    if len(conn.execute(FINISH_ACTIONS, params).all()) != len(outcomes):
        raise RuntimeError("a claimed hold action left PENDING under its row lock")
    # A hold an action ended is announced by its ending (`write_endings`); a refused action
    # leaves its hold as it is, so its long polls are woken here.
    refused = sorted({o.action.transaction_id for o in outcomes if not o.completed})
    if refused:
        conn.execute(
            NOTIFY_FINAL, {"channel": FINAL_CHANNEL, "chunks": pg_array(id_chunks(refused))}
        )


def _fail_unwritable(conn: Connection, action: PendingAction, error: Exception) -> Decided:
    outcome = ActionOutcome(
        action, "FAILED", POSTING_ERROR, "the ledger could not write this capture or void"
    )
    with conn.begin_nested():
        _finish(conn, [outcome])
    cause = getattr(error, "orig", None) or error
    log.error(
        "Hold action %s on transaction %s could not be written and ends FAILED "
        "(posting_error): %s.",
        action.id,
        action.transaction_id,
        str(cause).strip().rstrip("."),
        extra={"transaction_id": str(action.transaction_id), "failure_code": POSTING_ERROR},
    )
    return Decided([outcome])
