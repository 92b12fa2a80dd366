"""The SQL of a reconciliation run, from claim to record.

The run itself, step by step, is `ledger_core.services.reconciliation.reconcile`.
A run is claimed (`RUNNING`) in its own short transaction, the checks read one
`REPEATABLE READ, READ ONLY` snapshot, and then one transaction writes the discrepancies,
one `reconciliation.drift_detected` outbox event per affected organization, the advanced
checkpoints and the run's final state: the run, its findings and its events become
visible together or not at all. Nothing here ever touches balances or entries.

Why per-wallet checkpoints are safe while transfers post: entry ids come from one
sequence, so across wallets a concurrent poster can commit entry 100 after entry 105 is
visible, and a global "checked up to id N" mark would skip entry 100 forever. Per wallet
that cannot happen: every writer locks the wallet row (`FOR UPDATE`, or the `UPDATE` of
its balance) before it takes ids for that wallet's entries, and holds the lock until it
commits, so one wallet's entries commit in id order and every snapshot sees a prefix of
each wallet's chain. A checkpoint `(wallet, last_entry_id, balance)` taken from a snapshot
therefore covers exactly the entries that can ever sit at or below it. Should a writer
ever break that rule, the next run still notices: the stored balance would then differ
from the checkpoint plus the newer entries. What incremental runs do not see is a change
*behind* a checkpoint (an old entry edited or removed); the nightly full run reads
everything and drops the checkpoint of any wallet it finds dirty, so such a wallet is
re-read from its first entry, and reported, by every later run.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from uuid import UUID

from sqlalchemy import Connection, Engine, text

from ledger_core.persistence.events.outbox import outbox_insert_many
from ledger_core.reconciliation import (
    DRIFT_EVENT,
    Checkpoint,
    Discrepancy,
    Findings,
    Kind,
    Mode,
    drift_events,
)

log = logging.getLogger("vaultcraft.reconciliation")

ABANDONED_AFTER = "15 minutes"
"""A run RUNNING this long was abandoned by a worker that died; a redelivery may take it."""

_CLAIM = text(f"""
    INSERT INTO reconciliation_runs (id, mode, status, started_at)
    VALUES (:id, :mode, 'RUNNING', clock_timestamp())
    ON CONFLICT (id) DO UPDATE SET status = 'RUNNING', started_at = clock_timestamp()
    WHERE reconciliation_runs.status = 'PENDING'
       OR (reconciliation_runs.status = 'RUNNING'
           AND reconciliation_runs.started_at < now() - interval '{ABANDONED_AFTER}')
    RETURNING id, mode
""")

_INSERT_DISCREPANCIES = text("""
    INSERT INTO reconciliation_discrepancies (run_id, kind, organization_id, wallet_id,
        transaction_id, settlement_id, entry_id, currency, expected, actual)
    SELECT :run_id, v.kind, v.org, v.wallet, v.tx, v.st, v.entry, v.currency, v.expected,
           v.actual
    FROM unnest(
        CAST(:kinds AS text[]), CAST(:orgs AS uuid[]), CAST(:wallets AS uuid[]),
        CAST(:transactions AS uuid[]), CAST(:settlements AS uuid[]), CAST(:entries AS bigint[]),
        CAST(:currencies AS text[]), CAST(:expected AS bigint[]), CAST(:actual AS bigint[])
    ) WITH ORDINALITY AS v(kind, org, wallet, tx, st, entry, currency, expected, actual, n)
    ORDER BY v.n
""")

# New checkpoints take key-share locks on their wallets (the foreign key). Posting holds
# wallets FOR UPDATE, taken in id order; taking ours in the same order means the two can
# wait for each other but never deadlock.
_UPSERT_CHECKPOINTS = text("""
    INSERT INTO reconciliation_checkpoints (wallet_id, last_entry_id, balance, checked_at)
    SELECT v.wallet_id, v.last_entry_id, v.balance, now()
    FROM unnest(CAST(:wallets AS uuid[]), CAST(:last_ids AS bigint[]),
                CAST(:balances AS bigint[])) AS v(wallet_id, last_entry_id, balance)
    ORDER BY v.wallet_id
    ON CONFLICT (wallet_id) DO UPDATE
    SET last_entry_id = EXCLUDED.last_entry_id, balance = EXCLUDED.balance, checked_at = now()
    WHERE reconciliation_checkpoints.last_entry_id <= EXCLUDED.last_entry_id
""")

_DROP_CHECKPOINTS = text("""
    DELETE FROM reconciliation_checkpoints WHERE wallet_id = ANY(CAST(:wallets AS uuid[]))
""")

_FINISH = text("""
    UPDATE reconciliation_runs
    SET status = :status, finished_at = clock_timestamp(), wallets_checked = :wallets,
        entries_checked = :entries, pending_requeued = :requeued, error = :error
    WHERE id = :id
""")

_WALLET_KINDS = frozenset({Kind.BALANCE_MISMATCH, Kind.BALANCE_CHAIN_BROKEN})


@contextmanager
def consistent_snapshot(engine: Engine) -> Iterator[Connection]:
    """A read-only transaction over one snapshot of committed data.

    The sorts and hashes of a full run over a million entries fit in memory with a
    larger `work_mem`, set for this transaction only.
    """
    with engine.connect() as conn, conn.begin():
        conn.execute(text("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY"))
        conn.execute(text("SET LOCAL work_mem = '256MB'"))
        conn.execute(text("SET LOCAL jit = off"))
        yield conn


def claim_run(engine: Engine, run_id: UUID | None, mode: Mode) -> tuple[UUID, Mode] | None:
    """Mark the run RUNNING; None when another delivery of the same run has it or did it."""
    with engine.begin() as conn:
        row = conn.execute(_CLAIM, {"id": run_id or uuid.uuid4(), "mode": mode.value}).first()
    return None if row is None else (row.id, Mode.parse(row.mode))


def record_findings(engine: Engine, run_id: UUID, findings: Findings, requeued: int) -> None:
    """Discrepancies, drift events, checkpoints and the run's end, in one transaction."""
    found = findings.discrepancies
    with engine.begin() as conn:
        if found:
            conn.execute(_INSERT_DISCREPANCIES, _columns(run_id, found))
            events = drift_events(run_id, findings.mode, found)
            conn.execute(*outbox_insert_many([(org, DRIFT_EVENT, data) for org, data in events]))
        if findings.mode is Mode.FULL:
            dirty = {d.wallet_id for d in found if d.kind in _WALLET_KINDS and d.wallet_id}
            conn.execute(_DROP_CHECKPOINTS, {"wallets": sorted(dirty | findings.held_back)})
        _advance(conn, findings.checkpoints)
        conn.execute(
            _FINISH,
            {
                "id": run_id,
                "status": "COMPLETED",
                "wallets": findings.wallets_checked,
                "entries": findings.entries_checked,
                "requeued": requeued,
                "error": None,
            },
        )


def record_failure(engine: Engine, run_id: UUID, error: str) -> None:
    with engine.begin() as conn:
        conn.execute(
            _FINISH,
            {
                "id": run_id,
                "status": "FAILED",
                "wallets": 0,
                "entries": 0,
                "requeued": 0,
                "error": error[:2000],
            },
        )


def _advance(conn: Connection, checkpoints: Sequence[Checkpoint]) -> None:
    if checkpoints:
        conn.execute(
            _UPSERT_CHECKPOINTS,
            {
                "wallets": [c.wallet_id for c in checkpoints],
                "last_ids": [c.last_entry_id for c in checkpoints],
                "balances": [c.balance for c in checkpoints],
            },
        )


def _columns(run_id: UUID, found: Sequence[Discrepancy]) -> dict[str, object]:
    return {
        "run_id": run_id,
        "kinds": [d.kind.value for d in found],
        "orgs": [d.organization_id for d in found],
        "wallets": [d.wallet_id for d in found],
        "transactions": [d.transaction_id for d in found],
        "settlements": [d.settlement_id for d in found],
        "entries": [d.entry_id for d in found],
        "currencies": [d.currency for d in found],
        "expected": [d.expected for d in found],
        "actual": [d.actual for d in found],
    }
