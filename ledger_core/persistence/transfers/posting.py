"""Where a transfer is posted: claim a batch, lock its wallets, write it set-based, commit.

One database transaction per batch:

1. claim PENDING transfers, an equal share per organization, with `FOR NO KEY UPDATE SKIP
   LOCKED` (`ledger_core.persistence.transfers.claim`), so concurrent workers take disjoint batches
   and a transfer is never posted twice (a transfer is moved out of PENDING only here,
   under its row lock, and the final-state trigger refuses any later change);
2. keep the transfers whose wallets no other batch holds (`free_subset`), then lock every
   wallet they touch with `FOR NO KEY UPDATE`, sorted by id, so concurrent batches always
   lock in one global order and cannot deadlock;
3. decide each transfer with `ledger_core.posting.plan_postings`;
4. write balances, entries, final states and outbox events with one statement each, under
   a savepoint: if the database refuses, `post_isolated` splits the batch until only the
   transfers that cannot be written fail (`posting_error`).

`NO KEY UPDATE` rather than `UPDATE`: it still excludes every other writer of the row, but
not the `KEY SHARE` locks that foreign-key checks take. The gateway stores new intents that
reference these wallets while a batch is posting; with `FOR UPDATE` the two could deadlock.
"""

from __future__ import annotations

import logging
import random
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import lru_cache
from typing import Any
from uuid import UUID

from sqlalchemy import Connection, TextClause, text
from sqlalchemy.exc import DBAPIError

from ledger_core.channels import FINAL_CHANNEL
from ledger_core.persistence.analytics.rollups import rollup_statements
from ledger_core.persistence.arrays import pg_array
from ledger_core.persistence.events.outbox import EventRow, event_json, outbox_insert_many
from ledger_core.persistence.transfers.claim import DEFAULT_FAIR_SHARE, Claimed, claim_batch
from ledger_core.posting import (
    Entry,
    Outcome,
    PendingTransfer,
    PostingPlan,
    RiskPolicy,
    WalletState,
    group_units,
    plan_postings,
)
from ledger_core.transfers import event_type, transaction_view

log = logging.getLogger("vaultcraft.posting")

POSTING_ERROR = "posting_error"
"""Failure code of a transfer the database refused to write (see `post_isolated`)."""


LOCK_WALLETS = text("""
    SELECT id, organization_id, type, currency, status, balance, held, overdraft_limit FROM wallets
    WHERE id = ANY(CAST(:ids AS uuid[]))
    ORDER BY id
    FOR NO KEY UPDATE
""")

FINISH = """
    UPDATE transactions AS t
    SET status = v.status, failure_code = v.code, failure_message = v.message,
        posted_at = CASE WHEN v.status = 'COMPLETED' THEN CAST(:at AS timestamptz) END,
        failed_at = CASE WHEN v.status = 'FAILED' THEN CAST(:at AS timestamptz) END
    FROM unnest(CAST(:ids AS uuid[]), CAST(:statuses AS text[]), CAST(:codes AS text[]),
                CAST(:messages AS text[])) AS v(id, status, code, message)
    WHERE t.id = v.id AND t.status = 'PENDING'
    RETURNING 1
"""
"""Moves claimed transfers to their final state; the PENDING guard makes a second posting
of the same transfer write nothing, which `write_plan` turns into a rolled-back batch."""

SET_BALANCES = """
        UPDATE wallets AS w SET balance = v.balance, held = v.held, updated_at = now()
        FROM unnest(CAST(:wallet_ids AS uuid[]), CAST(:balances AS bigint[]),
                    CAST(:held AS bigint[])) AS v(id, balance, held)
        WHERE w.id = v.id
        RETURNING 1
"""

INSERT_ENTRIES = """
        INSERT INTO ledger_entries
            (transaction_id, wallet_id, organization_id, direction, amount, currency, balance_after)
        SELECT v.transaction_id, v.wallet_id, v.organization_id, v.direction, v.amount,
               v.currency, v.balance_after
        FROM unnest(
            CAST(:e_transactions AS uuid[]), CAST(:e_wallets AS uuid[]),
            CAST(:e_organizations AS uuid[]), CAST(:e_directions AS text[]),
            CAST(:e_amounts AS bigint[]), CAST(:e_currencies AS text[]),
            CAST(:e_balances AS bigint[])
        ) WITH ORDINALITY AS v(transaction_id, wallet_id, organization_id, direction, amount,
                               currency, balance_after, n)
        ORDER BY v.n
        RETURNING 1
"""

WRITE_BATCH = text(
    f"""
    WITH balances AS (
{SET_BALANCES}
    ), entries AS (
{INSERT_ENTRIES}
    ), finished AS ({FINISH}
    ), events AS (
        INSERT INTO outbox (organization_id, type, data)
        SELECT v.organization_id, v.type, CAST(v.data AS jsonb)
        FROM unnest(CAST(:o_organizations AS uuid[]), CAST(:o_types AS text[]),
                    CAST(:o_data AS text[])) WITH ORDINALITY AS v(organization_id, type, data, n)
        ORDER BY v.n
        RETURNING 1
    )
    SELECT (SELECT count(*) FROM finished) AS finished,
           (SELECT count(*) FROM (SELECT pg_notify(:channel, ids)
                                  FROM unnest(CAST(:chunks AS text[])) AS ids) AS n) AS notified
"""
)
"""Balances, entries, final states, outbox events and long-poll wake-ups in one round trip
(built once: a statement text made per call would be compiled again at every batch)."""

POSTING_LOCK_CLASS = 0x706F7374  # "post"
TRY_POSTING_SLOT = text("SELECT pg_try_advisory_xact_lock(:lock_class, :slot)")
TAKE_POSTING_SLOT = text(
    "SELECT pg_advisory_xact_lock(:lock_class, CAST(floor(random() * :slots) AS int))"
)
"""Waits for one of `slots` posting slots, held until the batch's transaction ends."""

NOTIFY_FINAL = text("SELECT pg_notify(:channel, ids) FROM unnest(CAST(:chunks AS text[])) AS ids")


@dataclass(frozen=True)
class BatchResult:
    claimed: int
    outcomes: Sequence[Outcome]
    finished_at: datetime | None
    more: bool = False
    """The claim came back full, or left transfers for a batch holding their wallets: more
    may be waiting, claim again (with nothing posted: soon, not at once)."""

    @property
    def completed(self) -> int:
        return sum(1 for o in self.outcomes if o.completed)


def lock_wallets(conn: Connection, transfers: Sequence[PendingTransfer]) -> dict[UUID, WalletState]:
    ids = sorted({wallet_id for t in transfers for wallet_id in t.wallet_ids()})
    rows = conn.execute(LOCK_WALLETS, {"ids": pg_array(ids)})
    return {
        r.id: WalletState(
            r.id,
            r.organization_id,
            r.type,
            r.currency,
            r.status,
            r.balance,
            r.held,
            r.overdraft_limit,
        )
        for r in rows
    }


def final_rows(plan: PostingPlan, claimed: Claimed, at: datetime) -> list[dict[str, Any]]:
    """The claimed rows as they are once the plan is written."""
    rows = []
    for outcome in plan.outcomes:
        row = dict(claimed.rows[outcome.transfer.id])
        row.update(
            status=outcome.status,
            failure_code=outcome.failure_code,
            failure_message=outcome.failure_message,
            posted_at=at if outcome.completed else None,
            failed_at=None if outcome.succeeded else at,
        )
        rows.append(row)
    return rows


def write_plan(conn: Connection, plan: PostingPlan, claimed: Claimed, at: datetime) -> None:
    """Write a decided batch in one statement; refuse it if any transfer was not PENDING."""
    o = plan.outcomes
    final = final_rows(plan, claimed, at)
    events = final_events(final)
    params = {
        "at": at,
        **balance_params(plan.balances, plan.held),
        **entry_params(plan.entries),
        "ids": pg_array(x.transfer.id for x in o),
        "statuses": pg_array(x.status for x in o),
        "codes": pg_array(x.failure_code for x in o),
        "messages": pg_array(x.failure_message for x in o),
        "o_organizations": pg_array(org for org, _, _ in events),
        "o_types": pg_array(kind for _, kind, _ in events),
        "o_data": pg_array(event_json(data) for _, _, data in events),
        "channel": FINAL_CHANNEL,
        "chunks": pg_array(_id_chunks([x.transfer.id for x in o])),
    }
    finished = conn.execute(WRITE_BATCH, params).scalar_one()
    if finished != len(o):
        raise RuntimeError("a claimed transfer left PENDING under its row lock; refusing the batch")
    for statement, rollup in rollup_statements(final):
        conn.execute(statement, rollup)


def balance_params(balances: Mapping[UUID, int], held: Mapping[UUID, int]) -> dict[str, str]:
    """The parameters of `SET_BALANCES`: each wallet's new balance and open holds."""
    return {
        "wallet_ids": pg_array(balances),
        "balances": pg_array(balances.values()),
        "held": pg_array(held[wallet_id] for wallet_id in balances),
    }


def entry_params(entries: Sequence[Entry]) -> dict[str, str]:
    """The parameters of `INSERT_ENTRIES`, in the entries' order."""
    return {
        "e_transactions": pg_array(x.transaction_id for x in entries),
        "e_wallets": pg_array(x.wallet_id for x in entries),
        "e_organizations": pg_array(x.organization_id for x in entries),
        "e_directions": pg_array(x.direction for x in entries),
        "e_amounts": pg_array(x.amount for x in entries),
        "e_currencies": pg_array(x.currency for x in entries),
        "e_balances": pg_array(x.balance_after for x in entries),
    }


def final_events(rows: Sequence[Mapping[str, Any]]) -> list[EventRow]:
    """One event per organization involved: a cross-org transfer is reported to both sides."""
    events: list[EventRow] = []
    for row in rows:
        kind = event_type(row)
        orgs = [row["organization_id"]]
        if row["destination_organization_id"] != row["organization_id"]:
            orgs.append(row["destination_organization_id"])
        events.extend((org, kind, transaction_view(row, org)) for org in orgs)
    return events


def final_statements(rows: Sequence[Mapping[str, Any]]) -> list[tuple[TextClause, dict[str, Any]]]:
    """Outbox events, analytics rollups and long-poll wake-ups for transactions that just
    became final, for paths other than posting (cancel): run each in the same transaction.
    """
    events = final_events(rows)
    statements: list[tuple[TextClause, dict[str, Any]]] = []
    if events:
        statements.append(outbox_insert_many(events))
    statements.extend(rollup_statements(rows))
    chunks = _id_chunks([row["id"] for row in rows])
    if chunks:
        statements.append((NOTIFY_FINAL, {"channel": FINAL_CHANNEL, "chunks": chunks}))
    return statements


def _id_chunks(ids: Sequence[UUID]) -> list[str]:
    """NOTIFY payloads are capped at 8000 bytes: the ids go in chunks of 200."""
    return [",".join(str(i) for i in ids[n : n + 200]) for n in range(0, len(ids), 200)]


PolicyLoader = Callable[
    [Connection, Sequence[PendingTransfer], Mapping[UUID, WalletState]], RiskPolicy | None
]
"""Loads the risk rules a batch is checked against, after its wallets are locked."""


def post_batch(
    conn: Connection,
    limit: int,
    policy: PolicyLoader | None = None,
    slots: int | None = None,
    fair_share: int = DEFAULT_FAIR_SHARE,
) -> BatchResult:
    """Post up to `limit` waiting transfers in the caller's open database transaction.

    With `slots`, at most that many batches post at once across every worker: the others
    wait their turn, and each then claims everything that arrived meanwhile. Under load
    batches therefore grow by themselves (like the intake's group commit) instead of many
    small batches contending for the same wallets; an idle system posts at once.
    `fair_share` caps one organization's part of a batch shared with others.

    `claimed` 0 with `more` means every claimed transfer waits on wallets another
    transaction holds: nothing was posted, try again shortly. Only `claimed` 0 without
    `more` says nothing is waiting.
    """
    if slots is not None:
        take_posting_slot(conn, slots)
    claimed = claim_batch(conn, limit, fair_share)
    if not claimed.transfers:
        return BatchResult(claimed=0, outcomes=(), finished_at=None)
    ready = free_subset(conn, claimed)
    if not ready.transfers:
        return BatchResult(claimed=0, outcomes=(), finished_at=None, more=True)
    at = datetime.now(UTC)
    outcomes = post_isolated(conn, ready, policy, at)
    deferred = len(ready.transfers) < len(claimed.transfers)
    return BatchResult(len(ready.transfers), outcomes, at, claimed.more or deferred)


def take_posting_slot(conn: Connection, slots: int) -> None:
    """Take a free posting slot if there is one, else wait for one picked at random.

    Waiting on a random slot while another is free would hold a transfer (perhaps another
    tenant's, see `free_subset`) behind a whole batch for nothing.
    """
    first = random.randrange(slots)
    for n in range(slots):
        slot = (first + n) % slots
        if conn.execute(
            TRY_POSTING_SLOT, {"lock_class": POSTING_LOCK_CLASS, "slot": slot}
        ).scalar():
            return
    conn.execute(TAKE_POSTING_SLOT, {"lock_class": POSTING_LOCK_CLASS, "slots": slots})


@lru_cache(maxsize=4)
def _skipping_locked(statement: TextClause) -> TextClause:
    return text(str(statement).replace("FOR NO KEY UPDATE", "FOR NO KEY UPDATE SKIP LOCKED"))


def free_subset(conn: Connection, claimed: Claimed) -> Claimed:
    """The claimed transfers whose wallets no other batch holds, with those wallets locked.

    A batch busy with one tenant's hot wallets would otherwise hold up every other
    transfer claimed with them until it commits. Transfers left out stay PENDING (their
    row locks end with this transaction) and the worker claims again at once. When every
    claimed transfer waits on a busy wallet, nothing is kept: the batch holding those
    wallets claims again when it commits (its claim was full), so waiting here would only
    hold a posting slot that another tenant's transfer may need.
    """
    ids = sorted({wallet_id for t in claimed.transfers for wallet_id in t.wallet_ids()})
    probe = conn.begin_nested()
    rows = conn.execute(_skipping_locked(LOCK_WALLETS), {"ids": pg_array(ids)})
    free = {r.id for r in rows}
    waiting = [t for t in claimed.transfers if not free.issuperset(t.wallet_ids())]
    blocked_groups = {t.atomic_group_id for t in waiting if t.atomic_group_id is not None}
    ready = [
        t
        for t in claimed.transfers
        if free.issuperset(t.wallet_ids()) and t.atomic_group_id not in blocked_groups
    ]
    if ready:
        probe.commit()
    else:
        probe.rollback()
    return claimed.subset(ready)


def post_claimed(
    conn: Connection, claimed: Claimed, policy: PolicyLoader | None, at: datetime
) -> list[Outcome]:
    """Lock the wallets of claimed transfers, decide them and write the result."""
    wallets = lock_wallets(conn, claimed.transfers)
    risk = policy(conn, claimed.transfers, wallets) if policy is not None else None
    plan = plan_postings(claimed.transfers, wallets, risk)
    write_plan(conn, plan, claimed, at)
    return plan.outcomes


def post_isolated(
    conn: Connection, claimed: Claimed, policy: PolicyLoader | None, at: datetime
) -> list[Outcome]:
    """Post claimed transfers; should the write fail, fail only the transfers that break it.

    Each attempt runs under a savepoint (a transaction nested in the batch's, keeping the
    claim's row locks and the wallets locked in id order). A failure other than a conflict
    or a lost connection splits the transfers in halves (an atomic batch stays whole),
    each posted on its own, recursively; a single transfer or atomic batch that still
    cannot be written ends FAILED as `posting_error`. One broken transfer costs
    about 2·log2(batch) attempts once, and never holds up the queue again.
    """
    try:
        with conn.begin_nested():
            return post_claimed(conn, claimed, policy, at)
    except Exception as exc:
        if is_conflict(exc):
            raise
        units = list(group_units(claimed.transfers))
        if len(units) == 1:
            return fail_unwritable(conn, claimed, at, exc)
    half = len(units) // 2
    first = [t for unit in units[:half] for t in unit]
    second = [t for unit in units[half:] for t in unit]
    return post_isolated(conn, claimed.subset(first), policy, at) + post_isolated(
        conn, claimed.subset(second), policy, at
    )


def fail_unwritable(
    conn: Connection, claimed: Claimed, at: datetime, error: Exception
) -> list[Outcome]:
    """End a transfer (or atomic batch) that cannot be written as FAILED, with its event."""
    plan = PostingPlan(
        outcomes=[
            Outcome(t, "FAILED", POSTING_ERROR, "the ledger could not write this transfer")
            for t in claimed.transfers
        ]
    )
    with conn.begin_nested():
        write_plan(conn, plan, claimed, at)
    cause = getattr(error, "orig", None) or error  # the database's words, not the statement
    for transfer in claimed.transfers:
        log.error(
            "Transfer %s of organization %s could not be written and ends FAILED "
            "(posting_error): %s.",
            transfer.id,
            transfer.organization_id,
            str(cause).strip().rstrip("."),
            extra={
                "transaction_id": str(transfer.id),
                "organization_id": str(transfer.organization_id),
                "failure_code": POSTING_ERROR,
            },
        )
    return plan.outcomes


def is_conflict(exc: BaseException) -> bool:
    """A lost connection or a serialization, deadlock or lock-timeout conflict: retry the
    whole batch later rather than blame one transfer."""
    if not isinstance(exc, DBAPIError):
        return False
    sqlstate = getattr(exc.orig, "sqlstate", None) or ""
    return (
        exc.connection_invalidated
        or sqlstate in {"40001", "40P01", "55P03"}
        or sqlstate.startswith("08")
    )
