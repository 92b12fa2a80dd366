"""Which batch may post now: the posting slots, and the wallets no other batch holds."""

from __future__ import annotations

import random
from functools import lru_cache
from uuid import UUID

from sqlalchemy import Connection, TextClause, text

from ledger_core.persistence.arrays import pg_array, pg_uuid_array
from ledger_core.persistence.transfers.claim import Claimed
from ledger_core.persistence.transfers.hold_actions import ClaimedActions
from ledger_core.persistence.transfers.ledger_writes import LOCK_WALLETS, sorted_ids, wallet_states
from ledger_core.posting import WalletState

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
    conn.execute(TAKE_POSTING_SLOT, params)


@lru_cache(maxsize=4)
def _skipping_locked(statement: TextClause) -> TextClause:
    return text(str(statement).replace("FOR NO KEY UPDATE", "FOR NO KEY UPDATE SKIP LOCKED"))


def free_subset(
    conn: Connection, claimed: Claimed, actions: ClaimedActions
) -> tuple[Claimed, ClaimedActions, dict[UUID, WalletState]]:
    """The claimed transfers and hold actions whose wallets no other batch holds, with
    those wallets locked (one statement, sorted by id: the global lock order), and the
    locked wallets as they are now.

    A batch busy with one tenant's hot wallets would otherwise hold up every other
    transfer claimed with them until it commits. Transfers left out stay PENDING (their
    row locks end with this transaction) and the worker claims again at once. When every
    claimed transfer waits on a busy wallet, nothing is kept: the batch ends at once, its
    commit releasing the wallets it did lock, and the batch holding the others claims
    again when it commits (its claim was full), so waiting here would only hold a posting
    slot that another tenant's transfer may need.
    """
    ids = sorted_ids(
        {wallet_id for t in claimed.transfers for wallet_id in t.wallet_ids()}
        | {wallet_id for a in actions.actions for wallet_id in actions.wallet_ids(a)}
    )
    wallets = wallet_states(
        conn.execute(_skipping_locked(LOCK_WALLETS), {"ids": pg_uuid_array(ids)})
    )
    if len(wallets) == len(ids):  # every wallet was free: everything claimed is ready
        return claimed.subset(claimed.transfers), actions.subset(actions.actions), wallets
    free = set(wallets)
    waiting = [t for t in claimed.transfers if not free.issuperset(t.wallet_ids())]
    blocked_groups = {t.atomic_group_id for t in waiting if t.atomic_group_id is not None}
    ready = [
        t
        for t in claimed.transfers
        if free.issuperset(t.wallet_ids()) and t.atomic_group_id not in blocked_groups
    ]
    ready_actions = [a for a in actions.actions if free.issuperset(actions.wallet_ids(a))]
    return claimed.subset(ready), actions.subset(ready_actions), wallets
