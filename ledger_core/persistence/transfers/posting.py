"""Where a transfer is posted: claim a batch, lock its wallets, write it set-based, commit.

One database transaction per batch:

1. claim PENDING transfers, an equal share per organization, with `FOR NO KEY UPDATE SKIP
   LOCKED` (`ledger_core.persistence.transfers.claim`), so concurrent workers take disjoint batches
   and a transfer is never posted twice (a transfer is moved out of PENDING only here,
   under its row lock, and the final-state trigger refuses any later change);
2. keep the transfers whose wallets no other batch holds and no older waiting transfer
   outside the batch touches (`free_subset`: transfers sharing a wallet post in the order
   they were accepted), locking every free wallet with `FOR NO KEY UPDATE SKIP LOCKED`,
   sorted by id, so concurrent batches always lock in one global order and cannot deadlock
   (claims take turns; a batch that lets transfers go rolls its claim back to a savepoint
   and locks again what it keeps, so the others are free at once: `relock`);
3. decide each transfer with `ledger_core.posting.plan_postings`;
4. write balances, entries, final states and outbox events in one statement, in the
   claim's subtransaction (`post_in_claim`): if the database refuses, the batch rolls back
   to its claim, locks its transfers again, and `post_isolated` splits it under nested
   savepoints until only the transfers that cannot be written fail (`posting_error`);
5. decide the waiting captures and voids claimed with them (`hold_actions`), whose holds'
   rows and wallets step 1 and 2 locked too.

The slots and the free-wallet probe are in `batch_locks`, the shared writes in
`ledger_writes`.

`NO KEY UPDATE` rather than `UPDATE`: it still excludes every other writer of the row, but
not the `KEY SHARE` locks that foreign-key checks take (the references that are still
foreign keys, such as reconciliation checkpoints'); with `FOR UPDATE` those could deadlock
with a batch. New intents naming these wallets take no lock on them: their references are
checked by statement (migration 0029).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from uuid import UUID

from sqlalchemy import Connection, text

from ledger_core.channels import FINAL_CHANNEL
from ledger_core.final_notices import state_chunks
from ledger_core.holds import ActionOutcome
from ledger_core.persistence.analytics.rollups import (
    FLUSH_WALLET_DAYS,
    SET_COUNTED_BALANCES,
    UPSERT_TRANSFERS_SQL,
    rollup_params,
    wallet_day_params,
)
from ledger_core.persistence.arrays import pg_array, pg_uuid_array
from ledger_core.persistence.direct import Savepoint, fetch_all_sync
from ledger_core.persistence.events.outbox import event_json
from ledger_core.persistence.pending_state import STILL_PENDING
from ledger_core.persistence.transfers.batch_locks import (
    claim_turn,
    free_subset,
    take_first_slot,
    take_posting_slot,
)
from ledger_core.persistence.transfers.claim import DEFAULT_FAIR_SHARE, Claimed, claim_batch
from ledger_core.persistence.transfers.conflicts import POSTING_ERROR, written_or_refused
from ledger_core.persistence.transfers.hold_actions import Decided, claim_actions, end_claimed
from ledger_core.persistence.transfers.ledger_writes import (
    INSERT_ENTRIES,
    balance_params,
    entry_params,
    final_events,
    lock_wallets,
)
from ledger_core.posting import (
    Outcome,
    PendingTransfer,
    PostingPlan,
    RiskPolicy,
    WalletState,
    group_units,
    plan_postings,
)

log = logging.getLogger("vaultcraft.posting")


FINISH = """
    UPDATE transactions AS t
    SET status = v.status, failure_code = v.code, failure_message = v.message,
        posted_at = CASE WHEN v.status = 'COMPLETED' THEN CAST(:at AS timestamptz) END,
        failed_at = CASE WHEN v.status = 'FAILED' THEN CAST(:at AS timestamptz) END
    FROM unnest(CAST(:ids AS uuid[]), CAST(:claimed_as AS text[]), CAST(:statuses AS text[]),
                CAST(:codes AS text[]), CAST(:messages AS text[]))
         AS v(id, claimed_as, status, code, message)
    WHERE t.id = v.id AND t.status = v.claimed_as
    RETURNING 1
"""
"""Moves claimed transfers to their final state. The guard (still in the state the claim
saw, PENDING) makes a second posting of the same transfer write nothing, which
`write_plan` turns into a rolled-back batch. It is a join condition, not a constant, so
that the planner finds each row by its primary key: with `t.status = 'PENDING'` it may
read the whole of a PENDING partial index instead, a cost that grows with the backlog."""


def _unindented(sql: str) -> str:
    """`sql` without its indentation and blank lines: psycopg caches a statement's
    placeholder conversion only up to 4096 characters, which `WRITE_BATCH` indented
    exceeds (converting it again costs about 70 us a batch)."""
    return "\n".join(line.strip() for line in sql.splitlines() if line.strip())


WRITE_BATCH = text(
    _unindented(f"""
    WITH flushed AS (
{FLUSH_WALLET_DAYS}
    ), balances AS (
{SET_COUNTED_BALANCES}
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
    ), transfer_rollups AS ({UPSERT_TRANSFERS_SQL}
    )
    SELECT (SELECT count(*) FROM finished) AS finished,
           (SELECT count(*) FROM (SELECT pg_notify(:channel, ids)
                                  FROM unnest(CAST(:chunks AS text[])) AS ids) AS n) AS notified
""")
)
"""Balances (with each wallet's counts of the day, a finished day moved to
`wallet_rollups` first), entries, final states, outbox events, transfer rollups and
long-poll wake-ups in one round trip (built once: a statement text made per call would be
compiled again at every batch; unindented, so that psycopg caches its conversion). The
rollups' writes return nothing and are read by nothing: PostgreSQL runs a data-modifying
WITH to completion all the same."""


@dataclass(frozen=True)
class BatchResult:
    claimed: int
    outcomes: Sequence[Outcome]
    finished_at: datetime | None
    more: bool = False
    """The claim came back full, or left transfers for a batch holding their wallets: more
    may be waiting, claim again (with nothing posted: soon, not at once)."""
    actions: Sequence[ActionOutcome] = ()
    """The captures and voids the batch decided (`hold_actions`)."""
    ended_holds: Mapping[UUID, Mapping[str, Any]] = field(default_factory=dict)
    """Each hold a capture or void ended, as it now is, keyed by the action's id."""

    @property
    def completed(self) -> int:
        return sum(1 for o in self.outcomes if o.completed)


def final_rows(plan: PostingPlan, claimed: Claimed, at: datetime) -> list[dict[str, Any]]:
    """The claimed rows as they are once the plan is written."""
    return [
        {
            **claimed.rows[outcome.transfer.id],
            "status": outcome.status,
            "failure_code": outcome.failure_code,
            "failure_message": outcome.failure_message,
            "posted_at": at if outcome.completed else None,
            "failed_at": None if outcome.succeeded else at,
        }
        for outcome in plan.outcomes
    ]


def write_plan(conn: Connection, plan: PostingPlan, claimed: Claimed, at: datetime) -> None:
    """Write a decided batch in one statement; refuse it if any transfer was not PENDING."""
    o = plan.outcomes
    final = final_rows(plan, claimed, at)
    events = final_events(final)
    ids = [x.transfer.id for x in o]
    statuses = [x.status for x in o]
    params = {
        "at": at,
        **balance_params(plan.balances, plan.held),
        **entry_params(plan.entries),
        "ids": pg_uuid_array(ids),
        "claimed_as": pg_array(["PENDING"] * len(o)),
        "statuses": pg_array(statuses),
        "codes": pg_array([x.failure_code for x in o]),
        "messages": pg_array([x.failure_message for x in o]),
        "o_organizations": pg_uuid_array([org for org, _, _ in events]),
        "o_types": pg_array([kind for _, kind, _ in events]),
        "o_data": pg_array([event_json(data) for _, _, data in events]),
        "channel": FINAL_CHANNEL,
        "chunks": pg_array(state_chunks(list(zip(ids, statuses, strict=True)), at)),
        **rollup_params(final),
        **wallet_day_params(final, list(plan.balances)),
    }
    [(finished, _notified)] = fetch_all_sync(conn, WRITE_BATCH, params)
    if finished != len(o):
        raise RuntimeError("a claimed transfer left PENDING under its row lock; refusing the batch")


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
    *,
    spread: bool = True,
) -> BatchResult:
    """Post up to `limit` waiting transfers, and decide up to `limit` waiting captures and
    voids, in the caller's open database transaction (transfers first, then the holds'
    endings, under one set of wallet locks).

    With `slots`, at most that many batches post at once across every worker: the others
    wait their turn, and each then claims everything that arrived meanwhile. Under load
    batches therefore grow by themselves (like the intake's group commit) instead of many
    small batches contending for the same wallets; an idle system posts at once. Without
    `spread` the batch waits for the first slot even while another is free, only a moment
    while several organizations have transfers waiting (`take_first_slot`). `fair_share`
    caps one organization's part of a batch shared with others.

    `claimed` 0 with `more` means every claimed transfer waits on wallets another
    transaction holds: nothing was posted, try again shortly. Only `claimed` 0 without
    `more` says nothing is waiting, or nothing another batch already queued for the first
    slot will not claim (`take_first_slot`).
    """
    if slots is not None and spread:
        take_posting_slot(conn, slots)
    elif slots is not None and not take_first_slot(conn, slots):
        return BatchResult(claimed=0, outcomes=(), finished_at=None, more=False)
    wallets: dict[UUID, WalletState] | None
    with claim_turn(conn):
        claim = Savepoint(conn, "claim")
        claimed = claim_batch(conn, limit, fair_share)
        actions = claim_actions(conn, limit)
        if not claimed.transfers and not actions.actions:
            return BatchResult(claimed=0, outcomes=(), finished_at=None, more=actions.more)
        ready, ready_actions, wallets = free_subset(conn, claimed, actions)
        deferred = len(ready.transfers) + len(ready_actions.actions) < len(claimed.transfers) + len(
            actions.actions
        )
        if deferred and not ready_actions.actions:  # captures and voids keep the claim whole
            claim.rollback()
            ready, wallets = relock(conn, ready), None
    taken = len(ready.transfers) + len(ready_actions.actions)
    if not taken:
        return BatchResult(claimed=0, outcomes=(), finished_at=None, more=True)
    at = datetime.now(UTC)
    if not ready.transfers:
        outcomes: list[Outcome] = []
    elif ready_actions.actions:  # their locks must outlive a failed write: nested attempts
        outcomes = post_isolated(conn, ready, policy, at, wallets)
    else:
        outcomes = post_in_claim(conn, claim, ready, policy, at, wallets)
    decided = end_claimed(conn, ready_actions) if ready_actions.actions else Decided()
    more = claimed.more or actions.more or deferred
    return BatchResult(taken, outcomes, at, more, decided.outcomes, decided.ended)


RELOCK = text(f"""
    SELECT id FROM transactions
    WHERE id = ANY(CAST(:ids AS uuid[])) AND {STILL_PENDING}
    FOR NO KEY UPDATE SKIP LOCKED
""")
"""Locks those of the given transfers still PENDING that no other transaction holds."""


def relock(conn: Connection, ready: Claimed) -> Claimed:
    """Lock again the transfers a partly blocked batch keeps, once the claim's savepoint
    was rolled back to let the others go at once (unlocked: the next claim takes them
    first, in order, instead of transfers behind them). Still in the claim turn, so no
    other claim can have taken them; the batch's wallets are locked when it posts. After a
    refused write (`post_in_claim`) the turn is over: should another batch have taken any
    of them meanwhile, this batch keeps none and that one posts them.

    A batch that also decides captures or voids keeps its claim as it is instead (the
    transfers it lets go stay locked until it commits): locking those actions and their
    holds again is not worth it for a rare batch, and dropping them could hold a capture
    back for as long as every batch is partly blocked."""
    if not ready.transfers:
        return ready
    ids = pg_uuid_array(t.id for t in ready.transfers)
    locked = fetch_all_sync(conn, RELOCK, {"ids": ids})
    return ready if len(locked) == len(ready.transfers) else ready.subset([])


def post_in_claim(
    conn: Connection,
    claim: Savepoint,
    ready: Claimed,
    policy: PolicyLoader | None,
    at: datetime,
    wallets: dict[UUID, WalletState] | None,
) -> list[Outcome]:
    """Write the batch in the claim's own subtransaction; should the database refuse it,
    roll back to the claim, lock the transfers again and post them isolated.

    A row locked by one subtransaction and updated by another gets a multixact as its
    `xmax` (the lock and the update, two transaction ids), and PostgreSQL cannot tell such
    a row version dead without reading the multixact: index scans then never mark its
    entries dead, and every claim walks the PENDING indexes' entries of all the transfers
    posted since the last vacuum, reading each one's row (13-20 ms a claim after 230,000
    transfers with no vacuum yet; BENCHMARKS.md). Locked and updated by one subtransaction,
    the old versions are plainly dead once the batch commits, and the first scan over them
    marks their entries. The nested attempts of `post_isolated` are kept for the rare batch
    whose write fails (and for batches that decide captures or voids, whose locks must
    outlive a failed write).
    """
    written = written_or_refused(claim, lambda: post_claimed(conn, ready, policy, at, wallets))
    if not isinstance(written, Exception):
        return written
    relocked = relock(conn, ready)
    return post_isolated(conn, relocked, policy, at) if relocked.transfers else []


def post_claimed(
    conn: Connection,
    claimed: Claimed,
    policy: PolicyLoader | None,
    at: datetime,
    locked: dict[UUID, WalletState] | None = None,
) -> list[Outcome]:
    """Decide claimed transfers and write the result. `locked` are their wallets as this
    transaction locked them and nothing has changed them since; without it they are
    locked (again) and read here."""
    wallets = lock_wallets(conn, claimed.transfers) if locked is None else locked
    risk = policy(conn, claimed.transfers, wallets) if policy is not None else None
    plan = plan_postings(claimed.transfers, wallets, risk)
    write_plan(conn, plan, claimed, at)
    return plan.outcomes


def post_isolated(
    conn: Connection,
    claimed: Claimed,
    policy: PolicyLoader | None,
    at: datetime,
    locked: dict[UUID, WalletState] | None = None,
) -> list[Outcome]:
    """Post claimed transfers; should the write fail, fail only the transfers that break it.

    Each attempt runs under a savepoint (a transaction nested in the batch's, keeping the
    claim's row locks and the wallets locked in id order). A failure other than a conflict
    or a lost connection splits the transfers in halves (an atomic batch stays whole),
    each posted on its own, recursively; a single transfer or atomic batch that still
    cannot be written ends FAILED as `posting_error`. One broken transfer costs
    about 2·log2(batch) attempts once, and never holds up the queue again.

    `locked` (the wallets as `free_subset` locked them) serves the first attempt only: the
    halves read their wallets again, since the first half's balances are the second's.
    """
    attempt = Savepoint(conn, "attempt")
    written = written_or_refused(attempt, lambda: post_claimed(conn, claimed, policy, at, locked))
    if not isinstance(written, Exception):
        return written
    units = list(group_units(claimed.transfers))
    if len(units) == 1:
        return fail_unwritable(conn, claimed, at, written)
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
