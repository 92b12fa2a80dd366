"""The reconciliation checks: a handful of set-based queries over one consistent snapshot.

`check_ledger` must run inside a `REPEATABLE READ, READ ONLY` transaction (see
`reconciliation_runs.consistent_snapshot`). Posting changes a wallet's balance and inserts
its entries in one database transaction, so any snapshot shows each wallet's balance
together with exactly the entries that produced it: runs report no false drift while
transfers post concurrently.

Per wallet, one ordered pass with window functions recomputes the balance from the
entries and re-walks the `balance_after` chain. Per transaction (and settlement), one
aggregate compares debits with credits in each organization's books, and a full join
against the COMPLETED transactions finds books that are missing or that belong to a
transaction that never posted. Sums and overdrafts read the wallets table only.

Incremental runs start each wallet at its checkpoint (see `reconciliation_runs` for why
per-wallet checkpoints are safe against concurrent posting) and check only the
transactions those fresh entries belong to, plus those posted since the previous run.
"""

from __future__ import annotations

from typing import Any
from uuid import UUID

from sqlalchemy import Connection, text

from ledger_core.reconciliation import Checkpoint, Discrepancy, Findings, Kind, Mode

_FULL = {
    "wallet_start": "0::bigint AS from_id, 0::bigint AS from_balance,"
    " true AS has_checkpoint, w.balance AS checkpoint_balance",
    "wallet_join": "",
    "wallet_entries": "ledger_entries e",
    "start_balance": "0",
    "wallet_filter": "",
    "scope": "",
    "books_from": "ledger_entries e WHERE e.transaction_id IS NOT NULL",
    "posted_from": "transactions t WHERE t.status = 'COMPLETED'",
}

_INCREMENTAL = {
    "wallet_start": "coalesce(c.last_entry_id, 0) AS from_id, coalesce(c.balance, 0) AS"
    " from_balance, c.wallet_id IS NOT NULL AS has_checkpoint, c.balance AS checkpoint_balance",
    "wallet_join": "LEFT JOIN reconciliation_checkpoints c ON c.wallet_id = w.id",
    # LATERAL: one index range scan per wallet, past its checkpoint, not a scan of all.
    "wallet_entries": "base b CROSS JOIN LATERAL (SELECT * FROM ledger_entries e"
    " WHERE e.wallet_id = b.id AND e.id > b.from_id OFFSET 0) e",
    "start_balance": "b.from_balance",
    "wallet_filter": "WHERE p.wallet_id IS NOT NULL OR NOT b.has_checkpoint"
    " OR b.balance <> b.checkpoint_balance",
    "scope": """scope AS (
        SELECT e.transaction_id AS id
        FROM wallets w
        LEFT JOIN reconciliation_checkpoints c ON c.wallet_id = w.id
        CROSS JOIN LATERAL (
            SELECT transaction_id FROM ledger_entries e
            WHERE e.wallet_id = w.id AND e.id > coalesce(c.last_entry_id, 0) OFFSET 0
        ) e
        WHERE e.transaction_id IS NOT NULL
        GROUP BY e.transaction_id
    ),""",
    "books_from": "ledger_entries e JOIN scope s ON s.id = e.transaction_id",
    "posted_from": "transactions t JOIN scope s ON s.id = t.id WHERE t.status = 'COMPLETED'",
}

_WALLETS = """
WITH base AS (
    SELECT w.id, w.organization_id, w.currency, w.balance, {wallet_start}
    FROM wallets w {wallet_join}
),
fresh AS (
    SELECT e.wallet_id, e.id, e.transaction_id, e.settlement_id, e.balance_after, x.signed,
           coalesce(lag(e.balance_after) OVER (PARTITION BY e.wallet_id ORDER BY e.id),
                    {start_balance}) + x.signed AS running
    FROM {wallet_entries}
    CROSS JOIN LATERAL (
        SELECT CASE e.direction WHEN 'CREDIT' THEN e.amount ELSE -e.amount END AS signed
    ) x
),
per_wallet AS (
    SELECT wallet_id, sum(signed)::bigint AS delta, count(*) AS entries, max(id) AS last_id,
           min(id) FILTER (WHERE balance_after <> running) AS broken_id,
           (array_agg(running ORDER BY id) FILTER (WHERE balance_after <> running))[1]
               AS broken_expected,
           (array_agg(balance_after ORDER BY id) FILTER (WHERE balance_after <> running))[1]
               AS broken_actual,
           (array_agg(transaction_id ORDER BY id) FILTER (WHERE balance_after <> running))[1]
               AS broken_transaction_id,
           (array_agg(settlement_id ORDER BY id) FILTER (WHERE balance_after <> running))[1]
               AS broken_settlement_id
    FROM fresh GROUP BY wallet_id
)
SELECT b.id, b.organization_id, b.currency, b.balance AS stored,
       b.from_balance + coalesce(p.delta, 0) AS expected, coalesce(p.entries, 0) AS entries,
       coalesce(p.last_id, b.from_id) AS last_id, p.broken_id, p.broken_expected,
       p.broken_actual, p.broken_transaction_id, p.broken_settlement_id
FROM base b LEFT JOIN per_wallet p ON p.wallet_id = b.id
{wallet_filter}
"""

_BOOKS = """
WITH {scope} lines AS (
    SELECT e.transaction_id, e.organization_id, e.currency,
           CASE e.direction WHEN 'DEBIT' THEN e.amount ELSE 0 END AS debit,
           CASE e.direction WHEN 'CREDIT' THEN e.amount ELSE 0 END AS credit,
           1 AS entry, NULL::bigint AS posted_amount
    FROM {books_from}
    UNION ALL
    SELECT t.id, t.organization_id, t.currency, 0, 0, 0, t.amount FROM {posted_from}
    UNION ALL
    SELECT t.id, t.destination_organization_id, t.currency, 0, 0, 0, t.amount FROM {posted_from}
      AND t.destination_organization_id <> t.organization_id
),
odd AS (
    SELECT transaction_id, organization_id, currency, sum(debit)::bigint AS debits,
           sum(credit)::bigint AS credits, sum(entry) AS entries, max(posted_amount) AS amount
    FROM lines GROUP BY transaction_id, organization_id, currency
    HAVING sum(debit) <> sum(credit) OR sum(entry) = 0 OR max(posted_amount) IS NULL
)
SELECT odd.*, t.status FROM odd LEFT JOIN transactions t ON t.id = odd.transaction_id
"""

_SETTLEMENTS = """
    SELECT * FROM (
        SELECT e.settlement_id, e.organization_id, e.currency,
               coalesce(sum(e.amount) FILTER (WHERE e.direction = 'DEBIT'), 0)::bigint AS debits,
               coalesce(sum(e.amount) FILTER (WHERE e.direction = 'CREDIT'), 0)::bigint AS credits
        FROM ledger_entries e WHERE e.settlement_id IS NOT NULL {scope}
        GROUP BY e.settlement_id, e.organization_id, e.currency
    ) books WHERE debits <> credits
"""
_ALL_SETTLEMENTS = text(_SETTLEMENTS.format(scope=""))
_SOME_SETTLEMENTS = text(
    _SETTLEMENTS.format(scope="AND e.settlement_id = ANY(CAST(:ids AS uuid[]))")
)

_SUMS = text("""
    SELECT organization_id, currency, sum(balance)::bigint AS total FROM wallets
    GROUP BY GROUPING SETS ((organization_id, currency), (currency))
    HAVING sum(balance) <> 0
""")

_OVERDRAFTS = text("""
    SELECT id, organization_id, currency, balance FROM wallets
    WHERE type NOT IN ('SYSTEM', 'CLEARING') AND balance < 0
""")

_STUCK = text("""
    SELECT organization_id, count(*) AS stuck, (array_agg(id ORDER BY seq))[1] AS oldest
    FROM transactions
    WHERE status = 'PENDING' AND created_at < now() - make_interval(secs => :after)
    GROUP BY organization_id
""")


def check_ledger(conn: Connection, mode: Mode, pending_after_s: int) -> Findings:
    """Run every check in the caller's snapshot transaction; reads only."""
    shape = _FULL if mode is Mode.FULL else _INCREMENTAL
    found: list[Discrepancy] = []
    wallets, entries, clean = _check_wallets(conn, shape, found)
    _check_books(conn, shape, found)
    if mode is Mode.FULL:
        settlements = conn.execute(_ALL_SETTLEMENTS)
    else:
        fresh = list(conn.execute(_FRESH_SETTLEMENTS).scalars())
        settlements = conn.execute(_SOME_SETTLEMENTS, {"ids": fresh})
    for r in settlements:
        found.append(_money(Kind.UNBALANCED_SETTLEMENT, r, settlement_id=r.settlement_id))
    _check_wallet_table(conn, found)
    stuck = 0
    for r in conn.execute(_STUCK, {"after": pending_after_s}):
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
        clean_checkpoints=tuple(c for c in clean if c.wallet_id not in held_back),
        held_back=frozenset(held_back),
    )


def _check_wallet_table(conn: Connection, found: list[Discrepancy]) -> None:
    """Zero sums per organization and currency and over the ledger; overdrafts."""
    for r in conn.execute(_SUMS):
        kind = Kind.ORGANIZATION_SUM_NONZERO if r.organization_id else Kind.LEDGER_SUM_NONZERO
        found.append(
            Discrepancy(kind, r.organization_id, currency=r.currency, expected=0, actual=r.total)
        )
    for r in conn.execute(_OVERDRAFTS):
        found.append(
            Discrepancy(
                Kind.OVERDRAFT,
                r.organization_id,
                r.id,
                currency=r.currency,
                expected=0,
                actual=r.balance,
            )
        )


def _check_wallets(
    conn: Connection, shape: dict[str, str], found: list[Discrepancy]
) -> tuple[int, int, list[Checkpoint]]:
    """Balances and `balance_after` chains; returns counts and the wallets found clean."""
    wallets = entries = 0
    clean: list[Checkpoint] = []
    full = shape is _FULL
    if full:
        # Every entry is read: one sequential scan and an in-memory sort beat a million
        # heap visits in (wallet, id) index order, which the planner would otherwise pick.
        conn.execute(text("SET LOCAL enable_indexscan = off"))
    rows = conn.execute(text(_WALLETS.format(**shape))).all()
    if full:
        conn.execute(text("SET LOCAL enable_indexscan = on"))
    for r in rows:
        wallets += 1
        entries += r.entries
        dirty = False
        if r.broken_id is not None:
            dirty = True
            found.append(
                Discrepancy(
                    Kind.BALANCE_CHAIN_BROKEN,
                    r.organization_id,
                    r.id,
                    r.broken_transaction_id,
                    r.broken_settlement_id,
                    r.broken_id,
                    r.currency,
                    r.broken_expected,
                    r.broken_actual,
                )
            )
        if r.stored != r.expected:
            dirty = True
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
        if not dirty:
            clean.append(Checkpoint(r.id, r.last_id, r.expected))
    return wallets, entries, clean


def _check_books(conn: Connection, shape: dict[str, str], found: list[Discrepancy]) -> None:
    """Debits against credits per transaction and organization; missing and stray books."""
    for r in conn.execute(text(_BOOKS.format(**shape))):
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


_FRESH_SETTLEMENTS = text("""
    SELECT DISTINCT e.settlement_id
    FROM wallets w
    LEFT JOIN reconciliation_checkpoints c ON c.wallet_id = w.id
    CROSS JOIN LATERAL (
        SELECT settlement_id FROM ledger_entries e
        WHERE e.wallet_id = w.id AND e.id > coalesce(c.last_entry_id, 0) OFFSET 0
    ) e
    WHERE e.settlement_id IS NOT NULL
""")

_WALLETS_OF = text("""
    SELECT wallet_id FROM ledger_entries
    WHERE transaction_id = ANY(CAST(:tx AS uuid[])) OR settlement_id = ANY(CAST(:st AS uuid[]))
    UNION
    SELECT unnest(ARRAY[source_wallet_id, destination_wallet_id, source_clearing_wallet_id,
                        destination_clearing_wallet_id])
    FROM transactions WHERE id = ANY(CAST(:tx AS uuid[]))
""")

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
    return {w for w in conn.execute(_WALLETS_OF, {"tx": tx, "st": st}).scalars() if w}


def _money(kind: Kind, r: Any, **where: Any) -> Discrepancy:
    return Discrepancy(
        kind,
        r.organization_id,
        currency=r.currency,
        expected=int(r.debits),
        actual=int(r.credits),
        **where,
    )
