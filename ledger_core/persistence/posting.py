"""Where a transfer is posted: claim a batch, lock its wallets, write it set-based, commit.

One database transaction per batch:

1. claim PENDING transfers in submission order with `FOR UPDATE SKIP LOCKED`, so
   concurrent workers take disjoint batches and a transfer is never posted twice (a
   transfer is moved out of PENDING only here, under its row lock, and the final-state
   trigger refuses any later change);
2. lock every wallet the batch touches with `FOR UPDATE`, sorted by id, so concurrent
   batches always lock in one global order and cannot deadlock;
3. decide each transfer with `ledger_core.posting.plan_postings`;
4. write balances, entries, final states and outbox events with one statement each.

Members of an atomic batch are claimed through their leader (the member whose id is the
batch id), so a batch is always posted whole by one worker.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from uuid import UUID

from sqlalchemy import Connection, text

from ledger_core.persistence.rollups import write_rollups
from ledger_core.posting import (
    Outcome,
    PendingTransfer,
    PostingPlan,
    RiskPolicy,
    WalletState,
    plan_postings,
)
from ledger_core.transfers import event_type, transaction_view

FINAL_CHANNEL = "vaultcraft_final"
"""NOTIFY channel carrying ids of transfers that reached a final state (for long polls)."""

_TRANSFER_COLUMNS = """id, seq, organization_id, destination_organization_id, kind,
    source_wallet_id, destination_wallet_id, source_clearing_wallet_id,
    destination_clearing_wallet_id, amount, currency, created_at, atomic_group_id"""

CLAIM = text(f"""
    SELECT {_TRANSFER_COLUMNS} FROM transactions
    WHERE status = 'PENDING' AND (atomic_group_id IS NULL OR atomic_group_id = id)
    ORDER BY seq
    LIMIT :limit
    FOR UPDATE SKIP LOCKED
""")

CLAIM_GROUP_MEMBERS = text(f"""
    SELECT {_TRANSFER_COLUMNS} FROM transactions
    WHERE atomic_group_id = ANY(CAST(:groups AS uuid[])) AND id <> atomic_group_id
      AND status = 'PENDING'
    ORDER BY seq
    FOR UPDATE
""")

LOCK_WALLETS = text("""
    SELECT id, organization_id, type, currency, status, balance FROM wallets
    WHERE id = ANY(CAST(:ids AS uuid[]))
    ORDER BY id
    FOR UPDATE
""")

UPDATE_BALANCES = text("""
    UPDATE wallets AS w SET balance = v.balance, updated_at = now()
    FROM unnest(CAST(:ids AS uuid[]), CAST(:balances AS bigint[])) AS v(id, balance)
    WHERE w.id = v.id
""")

INSERT_ENTRIES = text("""
    INSERT INTO ledger_entries
        (transaction_id, wallet_id, organization_id, direction, amount, currency, balance_after)
    SELECT v.transaction_id, v.wallet_id, v.organization_id, v.direction, v.amount, v.currency,
           v.balance_after
    FROM unnest(
        CAST(:transaction_ids AS uuid[]), CAST(:wallet_ids AS uuid[]),
        CAST(:organization_ids AS uuid[]), CAST(:directions AS text[]),
        CAST(:amounts AS bigint[]), CAST(:currencies AS text[]), CAST(:balances AS bigint[])
    ) WITH ORDINALITY AS v(transaction_id, wallet_id, organization_id, direction, amount,
                           currency, balance_after, n)
    ORDER BY v.n
""")

FINISH = text("""
    UPDATE transactions AS t
    SET status = v.status, failure_code = v.code, failure_message = v.message,
        posted_at = CASE WHEN v.status = 'COMPLETED' THEN now() END,
        failed_at = CASE WHEN v.status = 'FAILED' THEN now() END
    FROM unnest(CAST(:ids AS uuid[]), CAST(:statuses AS text[]), CAST(:codes AS text[]),
                CAST(:messages AS text[])) AS v(id, status, code, message)
    WHERE t.id = v.id AND t.status = 'PENDING'
    RETURNING t.*
""")

INSERT_EVENTS = text("""
    INSERT INTO outbox (organization_id, type, data)
    SELECT v.organization_id, v.type, CAST(v.data AS jsonb)
    FROM unnest(CAST(:organization_ids AS uuid[]), CAST(:types AS text[]),
                CAST(:data AS text[])) WITH ORDINALITY AS v(organization_id, type, data, n)
    ORDER BY v.n
""")

NOTIFY_FINAL = text("SELECT pg_notify(:channel, ids) FROM unnest(CAST(:chunks AS text[])) AS ids")


@dataclass(frozen=True)
class BatchResult:
    claimed: int
    outcomes: Sequence[Outcome]
    finished_at: datetime | None

    @property
    def completed(self) -> int:
        return sum(1 for o in self.outcomes if o.completed)


def _pending(row: Any) -> PendingTransfer:
    return PendingTransfer(**{k: row._mapping[k] for k in PendingTransfer.__slots__})


def claim_batch(conn: Connection, limit: int) -> list[PendingTransfer]:
    """Lock up to `limit` waiting transfers (whole atomic batches) in submission order."""
    leaders = [_pending(r) for r in conn.execute(CLAIM, {"limit": limit})]
    groups = [t.atomic_group_id for t in leaders if t.atomic_group_id is not None]
    if not groups:
        return leaders
    members = [_pending(r) for r in conn.execute(CLAIM_GROUP_MEMBERS, {"groups": groups})]
    return sorted(leaders + members, key=lambda t: t.seq)


def lock_wallets(conn: Connection, transfers: Sequence[PendingTransfer]) -> dict[UUID, WalletState]:
    ids = sorted({wallet_id for t in transfers for wallet_id in t.wallet_ids()})
    rows = conn.execute(LOCK_WALLETS, {"ids": ids})
    return {
        r.id: WalletState(r.id, r.organization_id, r.type, r.currency, r.status, r.balance)
        for r in rows
    }


def write_plan(conn: Connection, plan: PostingPlan) -> list[Any]:
    """Write a decided batch with one statement per table; returns the final transaction rows."""
    if plan.balances:
        conn.execute(
            UPDATE_BALANCES,
            {"ids": list(plan.balances), "balances": list(plan.balances.values())},
        )
    if plan.entries:
        e = plan.entries
        conn.execute(
            INSERT_ENTRIES,
            {
                "transaction_ids": [x.transaction_id for x in e],
                "wallet_ids": [x.wallet_id for x in e],
                "organization_ids": [x.organization_id for x in e],
                "directions": [x.direction for x in e],
                "amounts": [x.amount for x in e],
                "currencies": [x.currency for x in e],
                "balances": [x.balance_after for x in e],
            },
        )
    o = plan.outcomes
    rows = list(
        conn.execute(
            FINISH,
            {
                "ids": [x.transfer.id for x in o],
                "statuses": [x.status for x in o],
                "codes": [x.failure_code for x in o],
                "messages": [x.failure_message for x in o],
            },
        )
    )
    if len(rows) != len(o):
        raise RuntimeError("a claimed transfer left PENDING under its row lock; refusing the batch")
    write_final_events(conn, rows)
    return rows


def final_events(rows: Sequence[Any]) -> list[tuple[UUID, str, dict[str, Any]]]:
    """One event per organization involved: a cross-org transfer is reported to both sides."""
    events: list[tuple[UUID, str, dict[str, Any]]] = []
    for row in rows:
        mapping = row._mapping
        kind = event_type(mapping["status"])
        orgs = [mapping["organization_id"]]
        if mapping["destination_organization_id"] != mapping["organization_id"]:
            orgs.append(mapping["destination_organization_id"])
        events.extend((org, kind, transaction_view(mapping, org)) for org in orgs)
    return events


def write_final_events(conn: Connection, rows: Sequence[Any]) -> None:
    """Outbox events, analytics rollups and long-poll notifications for transactions that
    just became final."""
    events = final_events(rows)
    if events:
        conn.execute(
            INSERT_EVENTS,
            {
                "organization_ids": [org for org, _, _ in events],
                "types": [kind for _, kind, _ in events],
                "data": [json.dumps(data, separators=(",", ":")) for _, _, data in events],
            },
        )
    write_rollups(conn, rows)
    notify_final(conn, [row._mapping["id"] for row in rows])


def notify_final(conn: Connection, ids: Sequence[UUID]) -> None:
    """NOTIFY payloads are capped at 8000 bytes: send the ids in chunks of 200."""
    chunks = [",".join(str(i) for i in ids[n : n + 200]) for n in range(0, len(ids), 200)]
    if chunks:
        conn.execute(NOTIFY_FINAL, {"channel": FINAL_CHANNEL, "chunks": chunks})


PolicyLoader = Callable[
    [Connection, Sequence[PendingTransfer], Mapping[UUID, WalletState]], RiskPolicy | None
]
"""Loads the risk rules a batch is checked against, after its wallets are locked."""


def post_batch(conn: Connection, limit: int, policy: PolicyLoader | None = None) -> BatchResult:
    """Post up to `limit` waiting transfers in the caller's open database transaction."""
    transfers = claim_batch(conn, limit)
    if not transfers:
        return BatchResult(claimed=0, outcomes=(), finished_at=None)
    wallets = lock_wallets(conn, transfers)
    risk = policy(conn, transfers, wallets) if policy is not None else None
    plan = plan_postings(transfers, wallets, risk)
    rows = write_plan(conn, plan)
    finished_at = max((r._mapping["posted_at"] or r._mapping["failed_at"]) for r in rows)
    return BatchResult(claimed=len(transfers), outcomes=plan.outcomes, finished_at=finished_at)
