"""Durably accept transfer intents as PENDING, exactly once per idempotency key.

The intents, their audit records and the wake-up for the posting dispatcher are one
statement, so they commit together or not at all, whether the caller runs it in a
transaction of its own or in autocommit (the group committer). A `202` is answered only
after that commit, so an accepted transfer is never lost. In autocommit, the clearing
wallets of a new pair of organizations commit before the intents: a wallet made once per
pair and direction, which the next attempt would make all the same.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, fields
from functools import lru_cache
from itertools import islice
from typing import Any, NamedTuple
from uuid import UUID

import orjson
from sqlalchemy import TextClause, text
from sqlalchemy.ext.asyncio import AsyncConnection
from uuid_utils.compat import uuid7

from ledger_core.accounts import Principal
from ledger_core.channels import PENDING_CHANNEL
from ledger_core.errors import DomainError, IdempotencyKeyReused, ReferenceTaken
from ledger_core.intents import (
    BatchRefused,
    Route,
    Stored,
    TransferIntent,
    WalletRef,
    route_intent,
)
from ledger_core.persistence.arrays import pg_array, pg_uuid_array
from ledger_core.persistence.direct import fetch_all

LOAD_WALLETS = text(f"""
    SELECT {", ".join(f.name for f in fields(WalletRef))} FROM wallets
    WHERE id = ANY(CAST(:ids AS uuid[]))
""")
"""A wallet's columns in `WalletRef`'s field order, so each row builds one positionally."""

ACCEPTING_ORGS = text("""
    SELECT c.organization_id, c.counterparty_organization_id FROM counterparties c
    JOIN unnest(CAST(:payees AS uuid[]), CAST(:payers AS uuid[])) AS p(payee, payer)
      ON c.organization_id = p.payee AND c.counterparty_organization_id = p.payer
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

_INSERT_INTENTS = """
    WITH inserted AS (
    INSERT INTO transactions (
        id, organization_id, destination_organization_id, idempotency_key, request_hash, kind,
        source_wallet_id, destination_wallet_id, source_clearing_wallet_id,
        destination_clearing_wallet_id, amount, currency, description, metadata,
        reverses_transaction_id, atomic_group_id, atomic_group_size, created_by, hold_amount,
        hold_expires_at, postings, reference)
    SELECT v.id, v.org, v.dest_org, v.key, v.hash, v.kind, v.src, v.dst, v.src_clr, v.dst_clr,
           v.amount, v.currency, v.description, CAST(v.metadata AS jsonb), v.reverses,
           v.group_id, v.group_size, v.user_id,
           CASE WHEN v.hold_s IS NOT NULL THEN v.amount END,
           now() + make_interval(secs => v.hold_s), CAST(v.postings AS jsonb), v.reference
    FROM unnest(
        CAST(:ids AS uuid[]), CAST(:orgs AS uuid[]), CAST(:users AS uuid[]),
        CAST(:group_ids AS uuid[]), CAST(:group_sizes AS int[]),
        CAST(:dest_orgs AS uuid[]), CAST(:keys AS text[]),
        CAST(:hashes AS text[]), CAST(:kinds AS text[]), CAST(:srcs AS uuid[]),
        CAST(:dsts AS uuid[]), CAST(:src_clrs AS uuid[]), CAST(:dst_clrs AS uuid[]),
        CAST(:amounts AS bigint[]), CAST(:currencies AS text[]), CAST(:descriptions AS text[]),
        CAST(:metadatas AS text[]), CAST(:reverses AS uuid[]), CAST(:hold_secs AS int[]),
        CAST(:postings AS text[]), CAST(:references AS text[])
    ) WITH ORDINALITY AS v(id, org, user_id, group_id, group_size, dest_org, key, hash, kind,
                           src, dst, src_clr, dst_clr, amount, currency, description, metadata,
                           reverses, hold_s, postings, reference, n)
    ORDER BY v.n
    ON CONFLICT DO NOTHING
    RETURNING *
    ), woken AS (
        SELECT pg_notify(:channel, '') AS sent FROM (SELECT 1 FROM inserted LIMIT 1) AS any_new
    )/* companion */
    SELECT inserted.* FROM inserted CROSS JOIN (SELECT count(sent) FROM woken) AS w
"""

INSERT_INTENTS = text(_INSERT_INTENTS)
"""Stores the intents and, if any is new, wakes the posting dispatcher at commit, in one
round trip; a row that meets a used idempotency key or reference is not stored. The final
SELECT must use the wake-up's column: a CTE nobody reads is never run, and PostgreSQL drops
a LEFT JOIN whose columns are unused."""


class Companion(NamedTuple):
    """A data-modifying CTE to run in the intents' own statement, and its parameters.

    It may read `inserted`, the rows stored now (never a replayed or refused intent's), so
    what it writes for them commits with them and costs no round trip of its own. A
    data-modifying CTE always runs to completion, read or not. Its parameters' names must
    not be the intake's own (`ids`, `orgs`, `keys`, ...)."""

    cte: str
    params: Mapping[str, Any]


@lru_cache(maxsize=8)
def _insert_with(cte: str) -> TextClause:
    return text(_INSERT_INTENTS.replace("/* companion */", f", companion AS ({cte})"))


FIND_BY_KEYS = text("""
    SELECT t.* FROM transactions t
    JOIN unnest(CAST(:orgs AS uuid[]), CAST(:keys AS text[])) AS k(org, key)
      ON t.organization_id = k.org AND t.idempotency_key = k.key
""")


@dataclass(frozen=True)
class Item:
    """One intent to store, with who asked and where it was routed."""

    actor: Principal
    intent: TransferIntent
    route: Route
    group_id: UUID | None = None
    group_size: int | None = None
    leg_routes: tuple[Route, ...] = ()
    """For a multi-leg transaction, where each leg moves money (`route` is its first, which
    the row's own wallets and destination organization describe)."""
    id: UUID = field(default_factory=uuid7)
    """The transaction's id if stored now. Time-ordered: a new transfer's index entries
    land on the rightmost pages, which stay in memory however large the ledger grows."""

    @property
    def multi(self) -> bool:
        return self.intent.postings is not None

    @property
    def kind(self) -> str:
        if self.multi:
            return "MULTI"
        return "CROSS_ORG" if self.route.cross_org else "TRANSFER"


async def load_wallet_refs(conn: AsyncConnection, ids: Iterable[UUID]) -> dict[UUID, WalletRef]:
    rows = await fetch_all(conn, LOAD_WALLETS, {"ids": pg_uuid_array(set(ids))})
    return {r[0]: WalletRef(*r) for r in rows}


class KnownWallets:
    """The wallets one intake has read, so that it reads each only once.

    A `WalletRef` holds only what never changes once the wallet exists (wallets are never
    deleted), so a copy is never stale. Group commit then takes one round trip where it
    took two (the wallets' read, then the intents' statement) for every group whose
    wallets it has seen. A wallet not found is not remembered: it may be created next.
    At `size` wallets the older half is forgotten.
    """

    def __init__(self, size: int = 50_000) -> None:
        self._size = size
        self._refs: dict[UUID, WalletRef] = {}

    def __len__(self) -> int:
        return len(self._refs)

    async def load(self, conn: AsyncConnection, ids: Iterable[UUID]) -> dict[UUID, WalletRef]:
        refs = self._refs
        found = {}
        missing = set()
        for wallet_id in ids:
            ref = refs.get(wallet_id)
            if ref is None:
                missing.add(wallet_id)
            else:
                found[wallet_id] = ref
        if missing:
            loaded = await load_wallet_refs(conn, missing)
            found |= loaded
            self._refs |= loaded  # not `refs`: another load may have halved it meanwhile
            if len(self._refs) > self._size:
                self._refs = dict(islice(self._refs.items(), len(self._refs) // 2, None))
        return found


async def _accepting(
    conn: AsyncConnection, pairs: set[tuple[UUID, UUID]]
) -> set[tuple[UUID, UUID]]:
    """Which (payee org, payer org) pairs are counterparty links."""
    if not pairs:
        return set()
    ordered = sorted(pairs)
    rows = await fetch_all(
        conn,
        ACCEPTING_ORGS,
        {"payees": [p[0] for p in ordered], "payers": [p[1] for p in ordered]},
    )
    return {(r.organization_id, r.counterparty_organization_id) for r in rows}


async def route_each(
    conn: AsyncConnection,
    requests: Sequence[tuple[Principal, TransferIntent]],
    known: KnownWallets | None = None,
) -> list[Route | DomainError]:
    """Check every intent against its wallets (read, or taken from `known`); each gets a
    route or its refusal."""
    ids = [w for _, i in requests for w in (i.source_wallet_id, i.destination_wallet_id)]
    wallets = await (load_wallet_refs(conn, ids) if known is None else known.load(conn, ids))
    destinations = [(wallets.get(i.destination_wallet_id), actor) for actor, i in requests]
    pairs = {
        (payee.organization_id, actor.organization_id)
        for payee, actor in destinations
        if payee is not None and payee.organization_id != actor.organization_id
    }
    links = await _accepting(conn, pairs)
    accepting: dict[UUID, frozenset[UUID]] = {}
    for payee, payer in links:
        accepting[payer] = accepting.get(payer, frozenset()) | {payee}
    results: list[Route | DomainError] = []
    for actor, intent in requests:
        payees = accepting.get(actor.organization_id, frozenset())
        try:
            results.append(route_intent(actor, intent, wallets, payees))
        except DomainError as exc:
            results.append(exc)
    return results


async def route_all(
    conn: AsyncConnection, actor: Principal, intents: Sequence[TransferIntent]
) -> list[Route]:
    """Check every intent of one request; refuse the whole request if any one is refused."""
    results = await route_each(conn, [(actor, i) for i in intents])
    failures = [(n, r) for n, r in enumerate(results) if isinstance(r, DomainError)]
    if failures:
        if len(intents) == 1:
            raise failures[0][1]
        raise BatchRefused(failures)
    return [r for r in results if isinstance(r, Route)]


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
    found = await _find_clearing(conn, pairs)
    missing = sorted(pairs - found.keys())
    if missing:
        # Only for pairs never seen before: an INSERT that meets an existing clearing wallet
        # would wait for whichever posting or settlement is updating that wallet's balance.
        params = {
            "orgs": [p[0] for p in missing],
            "peers": [p[1] for p in missing],
            "currencies": [p[2] for p in missing],
        }
        await fetch_all(conn, ENSURE_CLEARING, params)
        found = await _find_clearing(conn, pairs)
    return found


async def _find_clearing(
    conn: AsyncConnection, pairs: set[tuple[UUID, UUID, str]]
) -> dict[tuple[UUID, UUID, str], UUID]:
    params = {"orgs": [p[0] for p in pairs], "peers": [p[1] for p in pairs]}
    rows = await fetch_all(conn, FIND_CLEARING, params)
    found = {(r.organization_id, r.counterparty_organization_id, r.currency): r.id for r in rows}
    return {key: wallet_id for key, wallet_id in found.items() if key in pairs}


def _clearing_of(
    route: Route, clearing: Mapping[tuple[UUID, UUID, str], UUID], payer_side: bool
) -> UUID | None:
    if not route.cross_org:
        return None
    payer, payee = route.source.organization_id, route.destination.organization_id
    own, peer = (payer, payee) if payer_side else (payee, payer)
    return clearing[(own, peer, route.source.currency)]


def _transfer_clearing(
    item: Item, clearing: Mapping[tuple[UUID, UUID, str], UUID], payer_side: bool
) -> UUID | None:
    """A cross-org transfer's clearing wallet; a multi-leg transaction keeps its per leg."""
    return None if item.multi else _clearing_of(item.route, clearing, payer_side)


def _postings_json(item: Item, clearing: Mapping[tuple[UUID, UUID, str], UUID]) -> str | None:
    """The legs as `transactions.postings` stores them: each as asked (minor units), and a
    leg into another organization with its payee and both clearing wallets, so posting,
    reads and settlement never have to work them out again."""
    if item.intent.postings is None:
        return None
    legs = []
    for leg, route in zip(item.intent.postings, item.leg_routes, strict=True):
        stored: dict[str, object] = {
            "source_wallet_id": str(leg.source_wallet_id),
            "destination_wallet_id": str(leg.destination_wallet_id),
            "amount": leg.amount,
            "currency": leg.currency,
        }
        if route.cross_org:
            stored |= {
                "destination_organization_id": str(route.destination.organization_id),
                "source_clearing_wallet_id": str(_clearing_of(route, clearing, True)),
                "destination_clearing_wallet_id": str(_clearing_of(route, clearing, False)),
            }
        legs.append(stored)
    return json.dumps(legs)


def _insert_params(
    items: Sequence[Item],
    hashes: Sequence[str],
    clearing: Mapping[tuple[UUID, UUID, str], UUID],
) -> dict[str, str]:
    """`INSERT_INTENTS`'s parameters: each column of the items as one array literal."""
    intents = [i.intent for i in items]
    return {
        "ids": pg_uuid_array([i.id for i in items]),
        "orgs": pg_uuid_array([i.actor.organization_id for i in items]),
        "users": pg_uuid_array([i.actor.user_id for i in items]),
        "group_ids": pg_uuid_array([i.group_id for i in items]),
        "group_sizes": pg_array([i.group_size for i in items]),
        "dest_orgs": pg_uuid_array([i.route.destination.organization_id for i in items]),
        "keys": pg_array([i.idempotency_key for i in intents]),
        "hashes": pg_array(hashes),
        "kinds": pg_array([i.kind for i in items]),
        "srcs": pg_uuid_array([i.source_wallet_id for i in intents]),
        "dsts": pg_uuid_array([i.destination_wallet_id for i in intents]),
        "src_clrs": pg_uuid_array([_transfer_clearing(i, clearing, True) for i in items]),
        "dst_clrs": pg_uuid_array([_transfer_clearing(i, clearing, False) for i in items]),
        "amounts": pg_array([i.amount for i in intents]),
        "currencies": pg_array([i.currency for i in intents]),
        "descriptions": pg_array([i.description for i in intents]),
        "metadatas": pg_array([_metadata_json(i.metadata) for i in intents]),
        "reverses": pg_uuid_array([i.reverses_transaction_id for i in intents]),
        "hold_secs": pg_array([i.hold_expires_in_s for i in intents]),
        "postings": pg_array([_postings_json(i, clearing) for i in items]),
        "references": pg_array([i.reference for i in intents]),
        "channel": PENDING_CHANNEL,
    }


def _metadata_json(metadata: Mapping[str, str]) -> str:
    return orjson.dumps(dict(metadata)).decode() if metadata else "{}"


def _by_key(rows: Sequence[Any]) -> dict[tuple[UUID, str], dict[str, Any]]:
    """Transaction rows (named tuples) as dicts, by organization and idempotency key."""
    by_key = {}
    for values in rows:
        row = values._asdict()
        by_key[(row["organization_id"], row["idempotency_key"])] = row
    return by_key


async def insert_items(
    conn: AsyncConnection, items: Sequence[Item], companion: Companion | None = None
) -> list[Stored | DomainError]:
    """Insert intents as PENDING in order; a key already used is a replay or a refusal,
    a new key with a reference already used is `ReferenceTaken`. `companion` runs in the
    same statement, on the rows stored.

    Two requests racing with one key both reach `ON CONFLICT DO NOTHING`: the second
    waits for the first to commit, inserts nothing, and finds the first's row by its key.
    """
    clearing = await _clearing_wallets(
        conn, [r for i in items for r in (i.leg_routes if i.multi else (i.route,))]
    )
    hashes = [i.intent.request_hash() for i in items]
    params = _insert_params(items, hashes, clearing)
    if companion is None:
        rows = await fetch_all(conn, INSERT_INTENTS, params)
    else:
        rows = await fetch_all(conn, _insert_with(companion.cte), params | dict(companion.params))
    inserted = _by_key(rows)
    keys = [(i.actor.organization_id, i.intent.idempotency_key) for i in items]
    missing = [key for key in keys if key not in inserted]
    existing: dict[tuple[UUID, str], dict[str, Any]] = {}
    if missing:
        found = await fetch_all(
            conn, FIND_BY_KEYS, {"orgs": [m[0] for m in missing], "keys": [m[1] for m in missing]}
        )
        existing = _by_key(found)
    stored_now: dict[tuple[UUID, str], dict[str, Any]] = {}
    results: list[Stored | DomainError] = []
    for item, key, request_hash in zip(items, keys, hashes, strict=True):
        row = inserted.pop(key, None)
        if row is not None:  # the first item with its key stored it; any later one replays
            stored_now[key] = row
            results.append(Stored(row, replayed=False))
            continue
        row = stored_now.get(key) or existing.get(key)
        if row is None:
            results.append(
                ReferenceTaken(
                    f"reference {item.intent.reference!r} is already used", field="reference"
                )
            )
            continue
        if row["request_hash"] != request_hash:
            results.append(
                IdempotencyKeyReused(
                    f"Idempotency-Key {item.intent.idempotency_key!r} was already used"
                    " with a different request",
                    field="idempotency_key",
                )
            )
        else:
            results.append(Stored(row, replayed=True))
    return results


async def store_multi(
    conn: AsyncConnection, actor: Principal, intent: TransferIntent, leg_routes: Sequence[Route]
) -> Stored:
    """Store a multi-leg transaction with the route of each of its legs (or replay it)."""
    (result,) = await insert_items(
        conn, [Item(actor, intent, leg_routes[0], leg_routes=tuple(leg_routes))]
    )
    if isinstance(result, DomainError):
        raise result
    return result


async def store_intents(
    conn: AsyncConnection,
    actor: Principal,
    intents: Sequence[TransferIntent],
    routes: Sequence[Route],
    *,
    atomic: bool = False,
) -> list[Stored]:
    """Store one request's intents; any refusal refuses (and, raised, rolls back) them all."""
    keys = [i.idempotency_key for i in intents]
    if len(set(keys)) != len(keys):
        raise IdempotencyKeyReused("the same idempotency key appears twice in this request")
    group_id = uuid7() if atomic and len(intents) > 1 else None
    group_size = len(intents) if group_id else None
    items = [
        Item(actor, i, r, group_id, group_size, id=group_id if group_id and n == 0 else uuid7())
        for n, (i, r) in enumerate(zip(intents, routes, strict=True))
    ]
    results = await insert_items(conn, items)
    refused = [(n, r) for n, r in enumerate(results) if isinstance(r, DomainError)]
    if refused:
        if len(intents) == 1:
            raise refused[0][1]
        raise BatchRefused(list(refused))
    stored = [r for r in results if isinstance(r, Stored)]
    if group_id is not None and len({s.replayed for s in stored}) > 1:
        raise IdempotencyKeyReused(
            "an atomic batch must be entirely new or an exact replay of an earlier one"
        )
    return stored
