"""Which batch may post now: the posting slots, and the wallets no other batch holds."""

from __future__ import annotations

import random
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from uuid import UUID

from sqlalchemy import Connection, text
from sqlalchemy.exc import DBAPIError

from ledger_core.persistence.arrays import pg_array, pg_uuid_array
from ledger_core.persistence.direct import Savepoint, fetch_all_sync
from ledger_core.persistence.transfers.claim import Claimed
from ledger_core.persistence.transfers.conflicts import LOCK_NOT_AVAILABLE, sqlstate
from ledger_core.persistence.transfers.hold_actions import ClaimedActions
from ledger_core.persistence.transfers.ledger_writes import (
    WALLET_STATE_COLUMNS,
    sorted_ids,
    wallet_states,
)
from ledger_core.posting import PendingTransfer, WalletState

POSTING_LOCK_CLASS = 0x706F7374  # "post"
TAKE_POSTING_SLOT = text("""
    SELECT coalesce(
        (SELECT s FROM unnest(CAST(:order AS int[])) AS o(s)
         WHERE pg_try_advisory_xact_lock(:lock_class, s) LIMIT 1),
        (SELECT CAST(:fallback AS int) FROM pg_advisory_xact_lock(:lock_class, CAST(:fallback AS int)))
    )
""")
"""Takes the first free slot in `order`, else waits for slot `fallback`; the slot is held
until the batch's transaction ends. One round trip: the scan stops at the first slot it
gets (`LIMIT 1`), and the waiting subquery runs only when that found none (`coalesce`
asks for its second value only then)."""


def take_posting_slot(conn: Connection, slots: int) -> None:
    """Take a free posting slot if there is one, else wait for one picked at random.

    Waiting on a random slot while another is free would hold a transfer (perhaps another
    tenant's, see `free_subset`) behind a whole batch for nothing. The free slots are tried
    from a random one on, so that concurrent batches do not all ask for the same first.
    """
    first = random.randrange(slots)
    params = {
        "lock_class": POSTING_LOCK_CLASS,
        "order": pg_array((first + n) % slots for n in range(slots)),
        "fallback": random.randrange(slots),
    }
    fetch_all_sync(conn, TAKE_POSTING_SLOT, params)


FIRST_SLOT_PATIENCE_MS = 50
"""How long a batch that prefers the first posting slot (`take_first_slot`) waits for it
before it takes any free slot."""
TRY_SLOT = text("SELECT pg_try_advisory_xact_lock(:lock_class, :slot)")
WAIT_SLOT = text("SELECT pg_advisory_xact_lock(:lock_class, :slot)")
SET_LOCK_TIMEOUT = text(
    "SELECT current_setting('lock_timeout'), set_config('lock_timeout', :timeout, true)"
)
"""Sets this transaction's `lock_timeout`; returns the one it replaces."""


SEVERAL_ORGANIZATIONS_WAIT = text("""
    WITH first AS (
        SELECT organization_id FROM transactions WHERE status = 'PENDING'
        ORDER BY organization_id, seq LIMIT 1
    )
    SELECT EXISTS (
        SELECT FROM first CROSS JOIN LATERAL (
            SELECT 1 FROM transactions AS t
            WHERE t.status = 'PENDING' AND t.organization_id > first.organization_id
            ORDER BY t.organization_id, t.seq LIMIT 1
        ) AS other
    )
""")
"""Whether transfers of more than one organization wait: the first two steps of the claim's
skip scan of `ix_transactions_pending_org_seq`."""


ANOTHER_WAITS_FOR_SLOT = text("""
    SELECT EXISTS (
        SELECT FROM pg_locks
        WHERE locktype = 'advisory' AND NOT granted AND objsubid = 2
          AND CAST(classid AS bigint) = :lock_class AND CAST(objid AS bigint) = :slot
          AND database = (SELECT oid FROM pg_database WHERE datname = current_database())
    )
""")
"""Whether a batch is already queued for the slot."""


def take_first_slot(conn: Connection, slots: int) -> bool:
    """Take posting slot 0; while it is busy and transfers of several organizations wait,
    wait for it up to `FIRST_SLOT_PATIENCE_MS`, then take any free slot
    (`take_posting_slot`). False, with no slot taken, when only one organization's
    transfers wait and another batch is already queued for slot 0: that one claims what
    this one would, and this one gives its worker thread back at once.

    Batches of a trickle queue for the first slot so that each claims everything that
    arrived during the one before (`services.posting.post_pending`). Behind a batch that
    takes longer, such as one of a thousand transfers of a tenant's backlog, a transfer of
    another tenant would otherwise wait for all of it although another slot is free. A
    lone organization's batches keep queueing for slot 0: taking another slot early only
    splits its backlog into smaller batches, each paying a batch's fixed cost (`bulk`: 13 %
    more CPU a transfer, BENCHMARKS.md).
    """
    params = {"lock_class": POSTING_LOCK_CLASS, "slot": 0}
    if slots == 1:
        fetch_all_sync(conn, WAIT_SLOT, params)
        return True
    if fetch_all_sync(conn, TRY_SLOT, params)[0][0]:
        return True
    if not fetch_all_sync(conn, SEVERAL_ORGANIZATIONS_WAIT, {})[0][0]:
        if fetch_all_sync(conn, ANOTHER_WAITS_FOR_SLOT, params)[0][0]:
            return False
        fetch_all_sync(conn, WAIT_SLOT, params)
        return True
    waiting = Savepoint(conn, "first_slot")
    timeout = {"timeout": f"{FIRST_SLOT_PATIENCE_MS}ms"}
    [(previous, _)] = fetch_all_sync(conn, SET_LOCK_TIMEOUT, timeout)
    try:
        fetch_all_sync(conn, WAIT_SLOT, params)
    except DBAPIError as exc:
        if sqlstate(exc) != LOCK_NOT_AVAILABLE:
            raise
        waiting.rollback()  # also restores `lock_timeout`
        take_posting_slot(conn, slots)
        return True
    fetch_all_sync(conn, SET_LOCK_TIMEOUT, {"timeout": previous})
    return True


CLAIM_TURN_CLASS = 0x636C6D74  # "clmt"
TAKE_CLAIM_TURN = text("SELECT pg_advisory_lock(:lock_class, 0)")
END_CLAIM_TURN = text("SELECT pg_advisory_unlock(:lock_class, 0)")


@contextmanager
def claim_turn(conn: Connection) -> Iterator[None]:
    """One batch at a time claims and locks its wallets; the batches then post side by side.

    Two claims running at once would take alternate transfers of one organization (each
    skips the rows the other has just locked), and each batch would then find older
    transfers of the other's on its wallets and let its own go, over and over. In turn,
    each claim takes an unbroken run of the oldest free transfers, and a later batch's
    transfers are all newer than those of the batches before it.

    The turn is a session-level advisory lock, so that it ends before the batch's
    transaction does. Should anything fail while it is held, the connection is closed
    (invalidated) rather than returned to its pool with the lock: a session's locks end
    with it.
    """
    params = {"lock_class": CLAIM_TURN_CLASS}
    fetch_all_sync(conn, TAKE_CLAIM_TURN, params)
    try:
        yield
        fetch_all_sync(conn, END_CLAIM_TURN, params)
    except BaseException:
        conn.invalidate()
        raise


HELD_WALLETS = text("""
    WITH held AS (
        SELECT h.seq, h.source_wallet_id, h.destination_wallet_id, h.source_clearing_wallet_id,
               h.destination_clearing_wallet_id, h.postings
        FROM unnest(CAST(:orgs AS uuid[]), CAST(:firsts AS bigint[]), CAST(:tops AS bigint[]))
             AS o(organization_id, first_seq, top)
        CROSS JOIN LATERAL (
            SELECT * FROM transactions AS t
            WHERE (t.organization_id, t.seq) >= (o.organization_id, o.first_seq)
              AND (t.organization_id, t.seq) < (o.organization_id, o.top)
              AND t.status = 'PENDING'
        ) AS h
    ), held_wallets AS (
        SELECT held.seq AS transfer_seq,
               unnest(ARRAY[source_wallet_id, destination_wallet_id, source_clearing_wallet_id,
                            destination_clearing_wallet_id]) AS id
        FROM held
        UNION ALL
        SELECT held.seq, CAST(leg ->> part AS uuid)
        FROM held CROSS JOIN jsonb_array_elements(held.postings) AS leg
        CROSS JOIN unnest(ARRAY['source_wallet_id', 'destination_wallet_id',
                                'source_clearing_wallet_id', 'destination_clearing_wallet_id']) AS part
    )
    SELECT transfer_seq, id FROM held_wallets WHERE id IS NOT NULL
""")
"""The wallets that waiting transfers of the claimed organizations touch, each beside its
transfer's `seq` (an integer reads faster than an id). Those not in this batch are older
ones: such a transfer is another batch's (claimed before this one, its wallets perhaps not
locked yet) or was let go by one, and it posts first. Each organization's range runs from
its oldest waiting transfer to this batch's newest, through `ix_transactions_pending_org_seq`
(the entries below the oldest, of transfers posted moments ago, are not walked again).

A list, not an anti-join against the batch's wallets: the planner cannot know that most
transfers have no legs, takes `jsonb_array_elements`' 100 rows a call, and sizes that
join's hash for hundreds of thousands of rows, which then spills to disk. Draining 100,000
transfers over 10,000 wallets, that one statement took 123 ms of a batch's claim turn; the
list and the lock take 45 ms.

The caller leaves the batch's own transfers out, from a set. Left out in SQL, with
statistics from before the backlog grew, the planner expects one row in the range and
compares every row with every claimed id in a nested loop: 1.25 million comparisons, 80 ms
of the claim turn a batch."""

LOCK_FREE_WALLETS = text(f"""
    SELECT {WALLET_STATE_COLUMNS} FROM wallets
    WHERE id = ANY(CAST(:ids AS uuid[]))
    ORDER BY id
    FOR NO KEY UPDATE SKIP LOCKED
""")
"""Locks those of the given wallets that no other transaction holds, in id order, and
returns them as `LOCK_WALLETS` does."""


def free_subset(
    conn: Connection, claimed: Claimed, actions: ClaimedActions
) -> tuple[Claimed, ClaimedActions, dict[UUID, WalletState]]:
    """The claimed transfers and hold actions that may post now, with their wallets locked
    (sorted by id: the global lock order), and the locked wallets as they are now.

    Transfers sharing a wallet post in the order they were accepted (`seq`). A claimed
    transfer waits when one of its wallets is not free: an older transfer outside this
    batch touches it (`HELD_WALLETS`), or another transaction holds it (`LOCK_FREE_WALLETS`
    skips it). Then so does every later transfer of the batch that shares a wallet with it,
    and the whole of its atomic batch. A batch busy with one tenant's hot wallets would
    otherwise also hold up every other transfer claimed with them until it commits.

    Transfers left out stay PENDING; `posting.post_batch` then rolls the claim back to its
    savepoint and locks again only what it keeps, so the next claim takes them first. When
    every claimed transfer waits, nothing is kept and the batch ends at once: the batch
    holding the others claims again when it commits (its claim was full), so waiting here
    would only hold a posting slot that another tenant's transfer may need.
    """
    ids = sorted_ids(
        {wallet_id for t in claimed.transfers for wallet_id in t.wallet_ids()}
        | {wallet_id for a in actions.actions for wallet_id in actions.wallet_ids(a)}
    )
    ours = {t.seq for t in claimed.transfers}
    held = {
        wallet_id
        for seq, wallet_id in fetch_all_sync(conn, HELD_WALLETS, _held_params(claimed))
        if seq not in ours
    }
    free = pg_uuid_array(i for i in ids if i not in held)
    wallets = wallet_states(fetch_all_sync(conn, LOCK_FREE_WALLETS, {"ids": free}))
    if len(wallets) == len(ids):  # every wallet was free: everything claimed is ready
        return claimed.subset(claimed.transfers), actions.subset(actions.actions), wallets
    ready, busy = in_order_ready(claimed.transfers, set(ids).difference(wallets))
    ready_actions = [a for a in actions.actions if busy.isdisjoint(actions.wallet_ids(a))]
    return claimed.subset(ready), actions.subset(ready_actions), wallets


def _held_params(claimed: Claimed) -> dict[str, str]:
    tops: dict[UUID, int] = {}
    for t in claimed.transfers:  # in seq order: the last of each organization is its newest
        tops[t.organization_id] = t.seq
    orgs = [org for org in tops if org in claimed.first_seqs]
    return {
        "orgs": pg_uuid_array(orgs),
        "firsts": pg_array(claimed.first_seqs[org] for org in orgs),
        "tops": pg_array(tops[org] for org in orgs),
    }


def in_order_ready(
    transfers: Sequence[PendingTransfer], busy: set[UUID]
) -> tuple[list[PendingTransfer], set[UUID]]:
    """The transfers (in `seq` order) that may post while the `busy` wallets may not be
    touched, and the wallets then busy: a transfer that waits keeps its wallets from every
    later one, and an atomic batch waits whole, so the pass repeats until no new atomic
    batch has to wait."""
    waiting_groups: set[UUID] = set()
    while True:
        held, ready, groups = set(busy), [], set(waiting_groups)
        for t in transfers:
            wallet_ids = t.wallet_ids()
            if t.atomic_group_id in waiting_groups or not held.isdisjoint(wallet_ids):
                held.update(wallet_ids)
                if t.atomic_group_id is not None:
                    groups.add(t.atomic_group_id)
            else:
                ready.append(t)
        if groups == waiting_groups:
            return ready, held
        waiting_groups = groups
