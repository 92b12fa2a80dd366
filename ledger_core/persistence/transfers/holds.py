"""Where a hold ends: lock it and its wallets, write the release (and a capture's entries).

Sync SQL, inside the caller's database transaction (the gateway reaches it through
`AsyncConnection.run_sync`). Locks are taken in the posting workers' order, the
transaction row first and then the wallets sorted by id, so a capture, a void and the
expiry racing for one hold queue on its row lock: the first ends it, the others find it
no longer HELD.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any
from uuid import UUID

from sqlalchemy import Connection, text

from ledger_core.persistence.arrays import pg_array
from ledger_core.persistence.transfers.ledger_writes import (
    INSERT_ENTRIES,
    SET_BALANCES,
    balance_params,
    entry_params,
    final_statements,
)
from ledger_core.posting import Entry, WalletState

LOCK_HOLD = text("""
    SELECT t.*, w.user_id AS source_user_id FROM transactions t
    JOIN wallets w ON w.id = t.source_wallet_id
    WHERE t.id = :id AND t.organization_id = :org
    FOR NO KEY UPDATE OF t
""")

LOCK_OVERDUE = text("""
    SELECT * FROM transactions
    WHERE status = 'HELD' AND hold_expires_at <= now()
    ORDER BY hold_expires_at
    LIMIT :limit
    FOR NO KEY UPDATE SKIP LOCKED
""")

END_HOLDS = text(f"""
    WITH balances AS ({SET_BALANCES}
    ), entries AS ({INSERT_ENTRIES}
    )
    UPDATE transactions AS t
    SET status = v.status, amount = coalesce(v.amount, t.amount),
        posted_at = CASE WHEN v.status = 'COMPLETED' THEN now() END,
        cancelled_at = CASE WHEN v.status <> 'COMPLETED' THEN now() END,
        hold_key = v.key, hold_request_hash = v.hash
    FROM unnest(CAST(:ids AS uuid[]), CAST(:statuses AS text[]), CAST(:amounts AS bigint[]),
                CAST(:keys AS text[]), CAST(:hashes AS text[])) AS v(id, status, amount, key, hash)
    WHERE t.id = v.id AND t.status = 'HELD'
    RETURNING t.*
""")
"""Wallets, entries and the ended holds in one statement; the HELD guard makes a second
ending of one hold write nothing, which `write_endings` turns into a refusal."""


@dataclass(frozen=True)
class Ending:
    """One hold as it ends: its row, its new status, what it posts and who asked."""

    row: Mapping[str, Any]
    status: str
    amount: int | None
    key: str | None = None
    request_hash: str | None = None


def lock_hold(conn: Connection, organization_id: UUID, transfer_id: UUID) -> dict[str, Any] | None:
    row = conn.execute(LOCK_HOLD, {"id": transfer_id, "org": organization_id}).one_or_none()
    return None if row is None else row._asdict()


def lock_overdue(conn: Connection, limit: int) -> list[dict[str, Any]]:
    """Up to `limit` holds past their expiry, skipping those another writer holds."""
    return [r._asdict() for r in conn.execute(LOCK_OVERDUE, {"limit": limit})]


def write_endings(
    conn: Connection,
    endings: Sequence[Ending],
    entries: Sequence[Entry],
    wallets: Mapping[UUID, WalletState],
) -> list[dict[str, Any]]:
    """Write the ended holds with their events; returns the rows as they now are."""
    touched = {e.row["source_wallet_id"] for e in endings} | {x.wallet_id for x in entries}
    params = {
        **balance_params(
            {w: wallets[w].balance for w in touched}, {w: wallets[w].held for w in touched}
        ),
        **entry_params(entries),
        "ids": pg_array(e.row["id"] for e in endings),
        "statuses": pg_array(e.status for e in endings),
        "amounts": pg_array(e.amount for e in endings),
        "keys": pg_array(e.key for e in endings),
        "hashes": pg_array(e.request_hash for e in endings),
    }
    rows = [r._asdict() for r in conn.execute(END_HOLDS, params)]
    if len(rows) != len(endings):
        raise RuntimeError("a locked hold left HELD under its row lock; refusing the write")
    for statement, values in final_statements(rows):
        conn.execute(statement, values)
    return rows
