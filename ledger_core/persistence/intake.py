"""Durably accept transfer intents as PENDING, exactly once per idempotency key.

Everything here runs inside the caller's database transaction: the intents, their
clearing wallets and the wake-up for the posting dispatcher commit together or not at all.
A `202` is answered only after that commit, so an accepted transfer is never lost.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any
from uuid import UUID

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection

from ledger_core.errors import DomainError, IdempotencyKeyReused
from ledger_core.intents import Actor, BatchRefused, Route, TransferIntent, WalletRef, route_intent

PENDING_CHANNEL = "vaultcraft_pending"
"""NOTIFY channel the dispatcher listens on: new PENDING work was committed."""

LOAD_WALLETS = text("""
    SELECT id, organization_id, user_id, type, currency, status FROM wallets
    WHERE id = ANY(CAST(:ids AS uuid[]))
""")

ACCEPTING_ORGS = text("""
    SELECT organization_id FROM counterparties
    WHERE counterparty_organization_id = :me AND organization_id = ANY(CAST(:orgs AS uuid[]))
""")

ENSURE_CLEARING = text("""
    INSERT INTO wallets (organization_id, type, currency, counterparty_organization_id, name)
    SELECT v.org, 'CLEARING', v.currency, v.peer, 'Clearing with ' || v.peer
    FROM unnest(CAST(:orgs AS uuid[]), CAST(:peers AS uuid[]), CAST(:currencies AS text[]))
         AS v(org, peer, currency)
    ON CONFLICT (organization_id, counterparty_organization_id, currency)
        WHERE type = 'CLEARING' DO NOTHING
""")

FIND_CLEARING = text("""
    SELECT organization_id, counterparty_organization_id, currency, id FROM wallets
    WHERE type = 'CLEARING' AND organization_id = ANY(CAST(:orgs AS uuid[]))
      AND counterparty_organization_id = ANY(CAST(:peers AS uuid[]))
""")

INSERT_INTENTS = text("""
    INSERT INTO transactions (
        id, organization_id, destination_organization_id, idempotency_key, request_hash, kind,
        source_wallet_id, destination_wallet_id, source_clearing_wallet_id,
        destination_clearing_wallet_id, amount, currency, description, metadata,
        reverses_transaction_id, atomic_group_id, atomic_group_size, created_by)
    SELECT v.id, :org, v.dest_org, v.key, v.hash, v.kind, v.src, v.dst, v.src_clr, v.dst_clr,
           v.amount, v.currency, v.description, CAST(v.metadata AS jsonb), v.reverses,
           :group_id, :group_size, :user_id
    FROM unnest(
        CAST(:ids AS uuid[]), CAST(:dest_orgs AS uuid[]), CAST(:keys AS text[]),
        CAST(:hashes AS text[]), CAST(:kinds AS text[]), CAST(:srcs AS uuid[]),
        CAST(:dsts AS uuid[]), CAST(:src_clrs AS uuid[]), CAST(:dst_clrs AS uuid[]),
        CAST(:amounts AS bigint[]), CAST(:currencies AS text[]), CAST(:descriptions AS text[]),
        CAST(:metadatas AS text[]), CAST(:reverses AS uuid[])
    ) WITH ORDINALITY AS v(id, dest_org, key, hash, kind, src, dst, src_clr, dst_clr, amount,
                           currency, description, metadata, reverses, n)
    ORDER BY v.n
    ON CONFLICT (organization_id, idempotency_key) DO NOTHING
    RETURNING *
""")

FIND_BY_KEYS = text("""
    SELECT * FROM transactions
    WHERE organization_id = :org AND idempotency_key = ANY(CAST(:keys AS text[]))
""")

NOTIFY_PENDING = text("SELECT pg_notify(:channel, '')")


@dataclass(frozen=True)
class Stored:
    """A transaction row as stored, and whether this request only replayed it."""

    row: Mapping[str, Any]
    replayed: bool


async def load_wallet_refs(conn: AsyncConnection, ids: Sequence[UUID]) -> dict[UUID, WalletRef]:
    rows = await conn.execute(LOAD_WALLETS, {"ids": list(set(ids))})
    return {r.id: WalletRef(**r._mapping) for r in rows}


async def accepting_orgs(conn: AsyncConnection, actor: Actor, orgs: set[UUID]) -> frozenset[UUID]:
    others = [o for o in orgs if o != actor.organization_id]
    if not others:
        return frozenset()
    rows = await conn.execute(ACCEPTING_ORGS, {"me": actor.organization_id, "orgs": others})
    return frozenset(r.organization_id for r in rows)


async def route_all(
    conn: AsyncConnection, actor: Actor, intents: Sequence[TransferIntent]
) -> list[Route]:
    """Check every intent; refuse the whole request if any one is refused."""
    wallets = await load_wallet_refs(
        conn, [w for i in intents for w in (i.source_wallet_id, i.destination_wallet_id)]
    )
    accepting = await accepting_orgs(conn, actor, {w.organization_id for w in wallets.values()})
    routes: list[Route] = []
    failures: list[tuple[int, DomainError]] = []
    for index, intent in enumerate(intents):
        try:
            routes.append(route_intent(actor, intent, wallets, accepting))
        except DomainError as exc:
            failures.append((index, exc))
    if failures:
        if len(intents) == 1:
            raise failures[0][1]
        raise BatchRefused(failures)
    return routes


async def _clearing_wallets(
    conn: AsyncConnection, routes: Sequence[Route]
) -> dict[tuple[UUID, UUID, str], UUID]:
    """Clearing wallets for every cross-org pair, created on first use."""
    pairs = set()
    for r in routes:
        if r.cross_org:
            payer, payee = r.source.organization_id, r.destination.organization_id
            pairs.add((payer, payee, r.source.currency))
            pairs.add((payee, payer, r.source.currency))
    if not pairs:
        return {}
    ordered = sorted(pairs)
    params = {
        "orgs": [p[0] for p in ordered],
        "peers": [p[1] for p in ordered],
        "currencies": [p[2] for p in ordered],
    }
    await conn.execute(ENSURE_CLEARING, params)
    rows = await conn.execute(FIND_CLEARING, {"orgs": params["orgs"], "peers": params["peers"]})
    return {(r.organization_id, r.counterparty_organization_id, r.currency): r.id for r in rows}


async def store_intents(
    conn: AsyncConnection,
    actor: Actor,
    intents: Sequence[TransferIntent],
    routes: Sequence[Route],
    *,
    atomic: bool = False,
) -> list[Stored]:
    """Insert the intents as PENDING (or find them again by key), in request order."""
    keys = [i.idempotency_key for i in intents]
    if len(set(keys)) != len(keys):
        raise IdempotencyKeyReused("the same idempotency key appears twice in this request")
    clearing = await _clearing_wallets(conn, routes)
    ids = [uuid.uuid4() for _ in intents]
    group_id = ids[0] if atomic and len(intents) > 1 else None

    def clr(route: Route, payer_side: bool) -> UUID | None:
        if not route.cross_org:
            return None
        payer, payee = route.source.organization_id, route.destination.organization_id
        key = (
            (payer, payee, route.source.currency)
            if payer_side
            else (payee, payer, route.source.currency)
        )
        return clearing[key]

    params = {
        "org": actor.organization_id,
        "user_id": actor.user_id,
        "group_id": group_id,
        "group_size": len(intents) if group_id else None,
        "ids": ids,
        "dest_orgs": [r.destination.organization_id for r in routes],
        "keys": [i.idempotency_key for i in intents],
        "hashes": [i.request_hash() for i in intents],
        "kinds": ["CROSS_ORG" if r.cross_org else "TRANSFER" for r in routes],
        "srcs": [i.source_wallet_id for i in intents],
        "dsts": [i.destination_wallet_id for i in intents],
        "src_clrs": [clr(r, True) for r in routes],
        "dst_clrs": [clr(r, False) for r in routes],
        "amounts": [i.amount for i in intents],
        "currencies": [i.currency for i in intents],
        "descriptions": [i.description for i in intents],
        "metadatas": [json.dumps(dict(i.metadata)) for i in intents],
        "reverses": [i.reverses_transaction_id for i in intents],
    }
    inserted = {
        r.idempotency_key: dict(r._mapping) for r in await conn.execute(INSERT_INTENTS, params)
    }
    existing: dict[str, Mapping[str, Any]] = {}
    missing = [i.idempotency_key for i in intents if i.idempotency_key not in inserted]
    if missing:
        rows = await conn.execute(FIND_BY_KEYS, {"org": actor.organization_id, "keys": missing})
        existing = {r.idempotency_key: dict(r._mapping) for r in rows}
    stored = [_stored(i, inserted, existing) for i in intents]
    if atomic and inserted and existing:
        raise IdempotencyKeyReused(
            "an atomic batch must be entirely new or an exact replay of an earlier one"
        )
    if inserted:
        await conn.execute(NOTIFY_PENDING, {"channel": PENDING_CHANNEL})
    return stored


def _stored(
    intent: TransferIntent,
    inserted: Mapping[str, Mapping[str, Any]],
    existing: Mapping[str, Mapping[str, Any]],
) -> Stored:
    key = intent.idempotency_key
    if key in inserted:
        return Stored(inserted[key], replayed=False)
    row = existing.get(key)
    if row is None:
        raise RuntimeError(f"idempotency key {key!r} neither inserted nor found")
    if row["request_hash"] != intent.request_hash():
        raise IdempotencyKeyReused(
            f"Idempotency-Key {key!r} was already used with a different request",
            field="idempotency_key",
        )
    return Stored(row, replayed=True)
