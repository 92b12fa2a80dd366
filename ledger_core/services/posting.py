"""Posting: the use case the posting workers run, batch after batch, one unit of work each.

A batch claims PENDING transfers (an equal share per organization, skipping rows another
worker holds), keeps those whose wallets no other batch holds and locks their wallets in
id order, decides each transfer with the posting rules and the organizations' risk rules
(`load_policy`, read under those locks), then writes entries, balances, final states and
outbox events and commits. `ledger_core.persistence.transfers.posting.post_batch` holds
the SQL of every step.

A worker drains: it posts batches until a claim leaves nothing waiting. When everything
it claims waits on wallets another batch holds, it stops and says so, and its adapter
looks again shortly (the batch holding those wallets also claims again when it commits).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass

from sqlalchemy import Connection, Engine

from ledger_core.acting import AuditContext
from ledger_core.holds import HoldAction
from ledger_core.persistence.audit.records import audit_insert
from ledger_core.persistence.risk.rules import load_policy
from ledger_core.persistence.transfers.claim import DEFAULT_FAIR_SHARE
from ledger_core.persistence.transfers.posting import BatchResult, post_batch
from ledger_core.transfers import transfer_audit_details


@dataclass(frozen=True)
class PostingLimits:
    batch_size: int
    """At most this many transfers per batch."""
    slots: int | None = None
    """At most this many batches post at once across every worker (None: no limit)."""
    fair_share: int = DEFAULT_FAIR_SHARE
    """At most this many places of a batch for one organization while others wait."""


def post_one_batch(
    engine: Engine,
    limits: PostingLimits,
    gate: AbstractContextManager[object] | None = None,
    *,
    spread: bool = True,
) -> BatchResult:
    """Post up to `limits.batch_size` waiting transfers in one unit of work.

    `gate` is entered before a connection is taken (a worker process's share of the
    posting slots), so threads waiting their turn hold no pooled connection. Without
    `spread` the batch waits for the first posting slot, even while another is free (only a
    moment while several organizations have transfers waiting).
    """
    with nullcontext() if gate is None else gate, engine.begin() as conn:
        result = post_batch(
            conn, limits.batch_size, load_policy, limits.slots, limits.fair_share, spread=spread
        )
        record_hold_endings(conn, result)
        return result


def record_hold_endings(conn: Connection, result: BatchResult) -> None:
    """One `transfer.captured` / `transfer.voided` audit record per hold a capture or void
    of the batch ended, in the batch's transaction, in the name of whoever asked for it."""
    for outcome in result.actions:
        row = result.ended_holds.get(outcome.action.id)
        if row is None:
            continue
        action = outcome.action
        context = AuditContext(organization_id=action.organization_id, actor_id=action.created_by)
        name = "transfer.captured" if action.action is HoldAction.CAPTURE else "transfer.voided"
        details = {**transfer_audit_details(row), "hold_action_id": str(action.id)}
        conn.execute(
            audit_insert(
                context, name, resource_type="transaction", resource_id=row["id"], details=details
            )
        )


def post_pending(
    engine: Engine,
    limits: PostingLimits,
    *,
    gate: AbstractContextManager[object] | None = None,
    on_batch: Callable[[BatchResult, float], None] | None = None,
) -> bool:
    """Post batches until a claim leaves nothing waiting beyond its shares.

    Returns True when it stopped because everything claimed waits on wallets other
    batches hold (look again shortly), False when nothing is waiting. `on_batch` is told
    of every batch that posted something, with its seconds (waiting for `gate` included).

    The first batch waits for the first posting slot (while transfers of several
    organizations wait, at most `batch_locks.FIRST_SLOT_PATIENCE_MS`, then it takes any
    free one); only once a batch leaves transfers waiting beyond its claim (a backlog) may
    the next take any free slot at once. While transfers trickle in, batches then post
    one after another, each claiming everything that arrived during the one before,
    instead of two slots sharing the trickle in batches half the size, each paying a
    batch's fixed cost and holding wallets the other wants. A backlog still posts in every
    slot, and a long batch in the first slot (a tenant's backlog) holds a transfer of
    another tenant, kicked after it arrived, no longer than about the patience.
    """
    spread = False
    while True:
        started = time.perf_counter()
        result = post_one_batch(engine, limits, gate, spread=spread)
        if result.claimed and on_batch is not None:
            on_batch(result, time.perf_counter() - started)
        if result.claimed == 0 and result.more:
            return True
        if not result.more:
            return False
        spread = True
