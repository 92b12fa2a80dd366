"""The reconciliation checks: a handful of set-based queries over one consistent snapshot.

`check_ledger` must run inside a `REPEATABLE READ, READ ONLY` transaction (see
`reconciliation_runs.consistent_snapshot`). Posting changes a wallet's balance and inserts
its entries in one database transaction, so any snapshot shows each wallet's balance
together with exactly the entries that produced it: runs report no false drift while
transfers post concurrently.

Per wallet, one ordered pass with window functions recomputes the balance from the
entries and re-walks the `balance_after` chain. Per transaction, one aggregate over the
entries and the COMPLETED transactions' expected books compares debits with credits in
each organization's books and finds books that are missing or that belong to a
transaction that never posted; settlements are checked the same way. Sums and
overdrafts read the wallets table only, stuck transfers the PENDING index.

Incremental runs start each wallet at its checkpoint (see `reconciliation_runs` for why
per-wallet checkpoints are safe against concurrent posting) and check the transactions
and settlements those fresh entries belong to. A COMPLETED transaction with no entries
at all touches no wallet, so only full runs can find it.
"""

from __future__ import annotations

from typing import Any
from uuid import UUID

from sqlalchemy import Connection, text

from ledger_core.persistence.reconciliation import queries as q
from ledger_core.reconciliation import Checkpoint, Discrepancy, Findings, Kind, Mode


def check_ledger(conn: Connection, mode: Mode, pending_after_s: int) -> Findings:
    """Run every check in the caller's snapshot transaction; reads only."""
    found: list[Discrepancy] = []
    wallets, entries, moved = _check_wallets(conn, mode, found)
    _check_books(conn, mode, found)
    if mode is Mode.FULL:
        settlements = conn.execute(q.ALL_SETTLEMENTS)
    else:
        fresh = list(conn.execute(q.FRESH_SETTLEMENTS).scalars())
        settlements = conn.execute(q.SOME_SETTLEMENTS, {"ids": fresh})
    for r in settlements:
        found.append(_money(Kind.UNBALANCED_SETTLEMENT, r, settlement_id=r.settlement_id))
    _check_wallet_table(conn, found)
    stuck = 0
    for r in conn.execute(q.STUCK, {"after": pending_after_s}):
        stuck += r.stuck
        found.append(
            Discrepancy(
                Kind.STUCK_PENDING,
                r.organization_id,
                transaction_id=r.oldest,
                expected=0,
                actual=r.stuck,
            )
        )
    held_back = _wallets_of_flagged(conn, found)
    return Findings(
        mode=mode,
        wallets_checked=wallets,
        entries_checked=entries,
        pending_stuck=stuck,
        discrepancies=tuple(found),
        checkpoints=tuple(c for c in moved if c.wallet_id not in held_back),
        held_back=frozenset(held_back),
    )


def _check_wallet_table(conn: Connection, found: list[Discrepancy]) -> None:
    """Zero sums per organization and currency and over the ledger; overdrafts; holds."""
    for r in conn.execute(q.SUMS):
        kind = Kind.ORGANIZATION_SUM_NONZERO if r.organization_id else Kind.LEDGER_SUM_NONZERO
        found.append(
            Discrepancy(kind, r.organization_id, currency=r.currency, expected=0, actual=r.total)
        )
    for r in conn.execute(q.OVERDRAFTS):
        found.append(
            Discrepancy(
                Kind.OVERDRAFT,
                r.organization_id,
                r.id,
                currency=r.currency,
                expected=-r.overdraft_limit,
                actual=r.balance,
            )
        )
    for r in conn.execute(q.HELD_MISMATCHES):
        found.append(
            Discrepancy(
                Kind.HELD_MISMATCH,
                r.organization_id,
                r.id,
                currency=r.currency,
                expected=r.open_holds,
                actual=r.held,
            )
        )


def _check_wallets(
    conn: Connection, mode: Mode, found: list[Discrepancy]
) -> tuple[int, int, list[Checkpoint]]:
    """Balances and `balance_after` chains; returns counts and the checkpoints that move."""
    full = mode is Mode.FULL
    if full:
        # Every entry is read: one sequential scan and an in-memory sort beat a million
        # heap visits in (wallet, id) index order, which the planner would otherwise pick.
        conn.execute(text("SET LOCAL enable_indexscan = off"))
    rows = conn.execute(q.wallets_check(mode)).all()
    if full:
        conn.execute(text("SET LOCAL enable_indexscan = on"))
    broken = [r.broken_id for r in rows if r.broken_id is not None]
    origins = {o.id: o for o in conn.execute(q.ENTRY_ORIGINS, {"ids": broken})} if broken else {}
    entries = 0
    moved: list[Checkpoint] = []
    for r in rows:
        entries += r.entries
        if r.broken_id is not None:
            origin = origins[r.broken_id]
            found.append(
                Discrepancy(
                    Kind.BALANCE_CHAIN_BROKEN,
                    r.organization_id,
                    r.id,
                    origin.transaction_id,
                    origin.settlement_id,
                    r.broken_id,
                    r.currency,
                    r.broken_expected,
                    r.broken_actual,
                )
            )
        if r.stored != r.expected:
            found.append(
                Discrepancy(
                    Kind.BALANCE_MISMATCH,
                    r.organization_id,
                    r.id,
                    currency=r.currency,
                    expected=r.expected,
                    actual=r.stored,
                )
            )
        elif r.broken_id is None and (r.last_id, r.expected) != (
            r.checkpoint_last_id,
            r.checkpoint_balance,
        ):
            moved.append(Checkpoint(r.id, r.last_id, r.expected))
    return len(rows), entries, moved


def _check_books(conn: Connection, mode: Mode, found: list[Discrepancy]) -> None:
    """Debits against credits per transaction and organization; missing and stray books."""
    for r in conn.execute(q.books_check(mode)):
        if r.entries == 0:
            found.append(
                Discrepancy(
                    Kind.POSTED_WITHOUT_ENTRIES,
                    r.organization_id,
                    transaction_id=r.transaction_id,
                    currency=r.currency,
                    expected=r.amount,
                    actual=0,
                )
            )
        elif r.status != "COMPLETED":
            found.append(
                Discrepancy(
                    Kind.UNPOSTED_WITH_ENTRIES,
                    r.organization_id,
                    transaction_id=r.transaction_id,
                    currency=r.currency,
                    expected=0,
                    actual=r.entries,
                )
            )
        elif r.debits != r.credits:
            found.append(_money(Kind.UNBALANCED_TRANSACTION, r, transaction_id=r.transaction_id))


_BOOK_KINDS = {
    Kind.UNBALANCED_TRANSACTION,
    Kind.UNBALANCED_SETTLEMENT,
    Kind.POSTED_WITHOUT_ENTRIES,
    Kind.UNPOSTED_WITH_ENTRIES,
}


def _wallets_of_flagged(conn: Connection, found: list[Discrepancy]) -> set[UUID]:
    """Wallets touched by a flagged transaction keep their checkpoint where it was, so the
    next incremental run reads those entries (and reports the transaction) again."""
    tx = sorted({d.transaction_id for d in found if d.kind in _BOOK_KINDS and d.transaction_id})
    st = sorted({d.settlement_id for d in found if d.kind in _BOOK_KINDS and d.settlement_id})
    if not tx and not st:
        return set()
    return {w for w in conn.execute(q.WALLETS_OF_TRANSACTIONS, {"tx": tx, "st": st}).scalars() if w}


def _money(kind: Kind, r: Any, **where: Any) -> Discrepancy:
    return Discrepancy(
        kind,
        r.organization_id,
        currency=r.currency,
        expected=int(r.debits),
        actual=int(r.credits),
        **where,
    )
