"""The ledger's shared writes: lock wallets in the global order, set balances and open
holds, append entries, and announce transactions that just became final.

Used by the posting batch (`posting`), by the holds a batch or the scheduler ends
(`holds`, `hold_actions`) and by cancel (`changes`); all run inside the caller's database
transaction.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from operator import attrgetter
from typing import Any
from uuid import UUID

from sqlalchemy import Connection, TextClause, text

from ledger_core.channels import FINAL_CHANNEL
from ledger_core.final_notices import id_chunks
from ledger_core.persistence.analytics.rollups import rollup_statements
from ledger_core.persistence.arrays import pg_array, pg_uuid_array
from ledger_core.persistence.direct import fetch_all_sync
from ledger_core.persistence.events.outbox import EventRow, outbox_insert_many
from ledger_core.posting import Entry, PendingTransfer, WalletState
from ledger_core.transfers import as_is, event_type, parties, transaction_view

WALLET_STATE_COLUMNS = "id, organization_id, type, currency, status, balance, held, overdraft_limit"
"""The wallet columns a batch locks and reads, in `WalletState`'s order (`wallet_states`)."""

LOCK_WALLETS = text(f"""
    SELECT {WALLET_STATE_COLUMNS} FROM wallets
    WHERE id = ANY(CAST(:ids AS uuid[]))
    ORDER BY id
    FOR NO KEY UPDATE
""")

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

NOTIFY_FINAL = text("SELECT pg_notify(:channel, ids) FROM unnest(CAST(:chunks AS text[])) AS ids")


def lock_wallets(conn: Connection, transfers: Sequence[PendingTransfer]) -> dict[UUID, WalletState]:
    ids = sorted_ids({wallet_id for t in transfers for wallet_id in t.wallet_ids()})
    return wallet_states(fetch_all_sync(conn, LOCK_WALLETS, {"ids": pg_uuid_array(ids)}))


def sorted_ids(ids: Iterable[UUID]) -> list[UUID]:
    """UUIDs in their order (`UUID.__lt__` compares `int`, a Python call per comparison)."""
    return sorted(ids, key=_as_int)


_as_int = attrgetter("int")


def wallet_states(rows: Sequence[Sequence[Any]]) -> dict[UUID, WalletState]:
    """The rows of `LOCK_WALLETS` as the posting rules see them (its columns are
    `WalletState`'s fields, in order)."""
    return {
        wallet_id: WalletState(wallet_id, org, kind, currency, status, balance, held, overdraft)
        for wallet_id, org, kind, currency, status, balance, held, overdraft in rows
    }


def balance_params(balances: Mapping[UUID, int], held: Mapping[UUID, int]) -> dict[str, str]:
    """The parameters of `SET_BALANCES`: each wallet's new balance and open holds."""
    return {
        "wallet_ids": pg_uuid_array(balances),
        "balances": pg_array(balances.values()),
        "held": pg_array(held[wallet_id] for wallet_id in balances),
    }


def entry_params(entries: Sequence[Entry]) -> dict[str, str]:
    """The parameters of `INSERT_ENTRIES`, in the entries' order."""
    return {
        "e_transactions": pg_uuid_array([x.transaction_id for x in entries]),
        "e_wallets": pg_uuid_array([x.wallet_id for x in entries]),
        "e_organizations": pg_uuid_array([x.organization_id for x in entries]),
        "e_directions": pg_array([x.direction for x in entries]),
        "e_amounts": pg_array([x.amount for x in entries]),
        "e_currencies": pg_array([x.currency for x in entries]),
        "e_balances": pg_array([x.balance_after for x in entries]),
    }


def final_events(rows: Sequence[Mapping[str, Any]]) -> list[EventRow]:
    """One event per organization involved: a cross-org transfer is reported to both sides,
    a multi-leg transaction to the payer and every payee of its legs, each seeing its view
    (its ids left as UUIDs: events are only written as JSON, by `event_json`)."""
    events: list[EventRow] = []
    for row in rows:
        kind = event_type(row)
        events.extend((org, kind, transaction_view(row, org, ids=as_is)) for org in parties(row))
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
    chunks = id_chunks([row["id"] for row in rows])
    if chunks:
        statements.append((NOTIFY_FINAL, {"channel": FINAL_CHANNEL, "chunks": chunks}))
    return statements
