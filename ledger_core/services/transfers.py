"""Transfers: submit (one, or a batch, atomic or not), cancel and reverse.

Submitting stores the transfer as PENDING; a posting worker decides its outcome. A
single transfer goes through the group committer, which batches the writes of many
concurrent requests into one database transaction: the rules (`route_intent`) still
decide each one, and each new transfer's audit record is written with it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from uuid import UUID

from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from ledger_core.accounts import Principal, require_admin
from ledger_core.acting import Acting
from ledger_core.intents import Stored, TransferIntent, batch_fingerprint
from ledger_core.money import parse_amount
from ledger_core.persistence.audit.records import (
    AuditContext,
    audit_insert,
    audit_inserted,
    audit_values,
)
from ledger_core.persistence.transfers.batch_keys import claim_batch_key, record_batch
from ledger_core.persistence.transfers.changes import (
    cancel_pending,
    key_used,
    lock_original,
    reversed_so_far,
)
from ledger_core.persistence.transfers.group_intake import (
    GATHER_MS,
    Announce,
    Request,
    key_name,
    unique_names,
)
from ledger_core.persistence.transfers.group_intake import GroupCommitter as GroupCommitter
from ledger_core.persistence.transfers.intake import (
    Companion,
    Item,
    route_all,
    store_intents,
    store_multi,
)
from ledger_core.persistence.transfers.reads import find_transfer
from ledger_core.transfer_rules import (
    check_may_cancel,
    check_reversible,
    not_cancellable,
    reversal,
    reversal_amount,
    visible_to,
)
from ledger_core.transfers import transfer_audit_details

ExpectTransfers = Callable[[Iterable[tuple[UUID, tuple[UUID, UUID]]]], None]
"""Told the id and the submitter (organization, user) of each transfer about to be stored."""


def transfer_committer(
    engine: AsyncEngine, expect: ExpectTransfers | None = None, gather_ms: int = GATHER_MS
) -> GroupCommitter:
    """The group committer of single transfers, each stored with its audit record;
    `expect` is told of each group's new transfers before their statement runs; a small
    group waits up to `gather_ms` for more while requests keep coming."""
    announce: Announce | None = None
    if expect is not None:

        def announce(items: Sequence[Item]) -> None:
            expect((i.id, (i.actor.organization_id, i.actor.user_id)) for i in items)

    return GroupCommitter(
        engine, companion=submitted_records, announce=announce, gather_ms=gather_ms
    )


def submitted_records(accepted: Sequence[tuple[Request, Item]]) -> Companion:
    """The `transfer.submitted` record of each intent, written by the statement that stores
    it, for the intents it stores (a replay or refusal gets none)."""
    records = [
        audit_values(
            request.audit or AuditContext(),
            "transfer.submitted",
            resource_type="transaction",
            resource_id=item.id,
            details=transfer_audit_details(
                {
                    "kind": item.kind,
                    "amount": item.intent.amount,
                    "currency": item.intent.currency,
                    "source_wallet_id": item.intent.source_wallet_id,
                    "destination_wallet_id": item.intent.destination_wallet_id,
                    "idempotency_key": item.intent.idempotency_key,
                }
            ),
        )
        for request, item in accepted
    ]
    return Companion(*audit_inserted(records))


async def submit_transfer(
    committer: GroupCommitter, acting: Acting, intent: TransferIntent
) -> Stored:
    """Store one transfer as PENDING (or replay it), grouped with concurrent ones, with its
    `transfer.submitted` record."""
    return await committer.submit(acting.principal, intent, acting.audit)


async def submit_batch(
    engine: AsyncEngine,
    committer: GroupCommitter,
    acting: Acting,
    intents: Sequence[TransferIntent],
    *,
    atomic: bool,
    batch_key: str | None = None,
) -> list[Stored]:
    """Store all of a batch or none of it; `atomic` batches also post all or none.

    With `batch_key` (the request's `Idempotency-Key`) the same batch again replays what the
    first stored, checking nothing else, and another batch under the key is refused
    (`idempotency_key_reused`), exactly like a single transfer's key. Single transfers
    under the batch's keys wait for it outside `committer`'s groups.
    """
    who = acting.principal
    org = who.organization_id
    async with committer.storing_elsewhere(unique_names(org, intents)), engine.begin() as conn:
        if batch_key is not None:
            fingerprint = batch_fingerprint(intents, atomic=atomic)
            earlier = await claim_batch_key(conn, org, batch_key, fingerprint)
            if earlier is not None:
                return [Stored(row, replayed=True) for row in earlier]
        routes = await route_all(conn, who, intents)
        stored = await store_intents(conn, who, intents, routes, atomic=atomic)
        if batch_key is not None:
            await record_batch(conn, org, batch_key, [s.row["id"] for s in stored])
        new = [s.row for s in stored if not s.replayed]
        if new:
            await conn.execute(
                audit_insert(
                    acting.audit,
                    "transfer.submitted",
                    resource_type="batch",
                    resource_id=new[0]["atomic_group_id"] or new[0]["id"],
                    details={"count": len(new), "transaction_ids": [str(r["id"]) for r in new]},
                )
            )
    return stored


async def submit_multi(
    engine: AsyncEngine, committer: GroupCommitter, acting: Acting, intent: TransferIntent
) -> Stored:
    """Store a multi-leg transaction as PENDING (or replay it); its legs post all or none.

    Each leg is routed like a transfer (a refused leg refuses the request, naming it): a
    leg into another organization that accepts the payer is a cross-organization leg,
    posted through the clearing wallets of that pair like a cross-organization transfer.
    """
    who = acting.principal
    names = unique_names(who.organization_id, [intent])
    async with committer.storing_elsewhere(names), engine.begin() as conn:
        routes = await route_all(conn, who, intent.legs())
        stored = await store_multi(conn, who, intent, routes)
        if not stored.replayed:
            await conn.execute(
                audit_insert(
                    acting.audit,
                    "transfer.submitted",
                    resource_type="transaction",
                    resource_id=stored.row["id"],
                    details={
                        **transfer_audit_details(stored.row),
                        "legs": len(routes),
                        "payee_organization_ids": sorted(
                            {str(r.destination.organization_id) for r in routes if r.cross_org}
                        ),
                    },
                )
            )
    return stored


async def cancel_found(
    conn: AsyncConnection, actor: Principal, found: dict[str, object]
) -> list[dict[str, object]]:
    """Cancel a transfer already read (all of its atomic batch) in the caller's transaction."""
    check_may_cancel(actor, found)
    rows = await cancel_pending(conn, found)
    if not rows:
        raise not_cancellable(found)
    return rows


async def cancel_transfer(
    engine: AsyncEngine, acting: Acting, transfer_id: UUID
) -> dict[str, object]:
    """Cancel a PENDING transfer; `not_cancellable` once a worker has posted or failed it."""
    async with engine.begin() as conn:
        found = visible_to(
            await find_transfer(conn, acting.principal.organization_id, transfer_id),
            acting.principal,
        )
        (row,) = await cancel_found(conn, acting.principal, found)
        await conn.execute(
            audit_insert(
                acting.audit,
                "transfer.cancelled",
                resource_type="transaction",
                resource_id=transfer_id,
                details=transfer_audit_details(row),
            )
        )
    return row


async def reverse_transfer(
    engine: AsyncEngine,
    committer: GroupCommitter,
    acting: Acting,
    transfer_id: UUID,
    amount: str | None,
    key: str,
) -> Stored:
    """Store the transfer that reverses (part of) a completed one (admins only).

    The original is locked while the reversal is checked and stored, so racing reversals
    are serialized and together never exceed it. A replay (same key) is recognised before
    the amount check.
    """
    who = acting.principal
    require_admin(who)
    name = key_name(who.organization_id, key)
    async with committer.storing_elsewhere({name}), engine.begin() as conn:
        found = visible_to(await find_transfer(conn, who.organization_id, transfer_id), who)
        asked = None if amount is None else parse_amount(amount, found["currency"])
        original = check_reversible(await lock_original(conn, who.organization_id, transfer_id))
        if await key_used(conn, who.organization_id, key):
            intent = reversal(original, int(original["amount"]), key, asked)
        else:
            done = await reversed_so_far(conn, transfer_id)
            intent = reversal(
                original,
                reversal_amount(original["amount"], done, asked, original["currency"]),
                key,
                asked,
            )
        (stored,) = await store_intents(conn, who, [intent], await route_all(conn, who, [intent]))
        if not stored.replayed:
            await conn.execute(
                audit_insert(
                    acting.audit,
                    "transfer.reversed",
                    resource_type="transaction",
                    resource_id=transfer_id,
                    details={
                        "reversal_id": str(stored.row["id"]),
                        **transfer_audit_details(stored.row),
                    },
                )
            )
    return stored
