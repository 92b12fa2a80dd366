"""The SQL of the reconciliation checks, in full and incremental shapes.

Full runs read every entry; incremental runs start each wallet at its checkpoint and
reach entries through one index range scan per wallet (`LATERAL ... OFFSET 0` keeps
the planner from flattening that into a scan of the whole table). Every amount leaves
the database as BIGINT: sums are cast back from NUMERIC.
"""

from __future__ import annotations

from sqlalchemy import TextClause, text

from ledger_core.reconciliation import Mode

_CHECKPOINT = (
    "c.last_entry_id AS checkpoint_last_id, c.balance AS checkpoint_balance"
    " FROM wallets w LEFT JOIN reconciliation_checkpoints c ON c.wallet_id = w.id"
)

FULL = {
    "wallet_start": f"0::bigint AS from_id, 0::bigint AS from_balance, {_CHECKPOINT}",
    "wallet_entries": "ledger_entries e",
    "start_balance": "0",
    "wallet_filter": "",
    "scope": "",
    "books_from": "ledger_entries e WHERE e.transaction_id IS NOT NULL",
    "posted_from": "transactions t WHERE t.status = 'COMPLETED'",
}

INCREMENTAL = {
    "wallet_start": "coalesce(c.last_entry_id, 0) AS from_id,"
    f" coalesce(c.balance, 0) AS from_balance, {_CHECKPOINT}",
    # LATERAL: one index range scan per wallet, past its checkpoint, not a scan of all.
    "wallet_entries": "base b CROSS JOIN LATERAL (SELECT * FROM ledger_entries e"
    " WHERE e.wallet_id = b.id AND e.id > b.from_id OFFSET 0) e",
    "start_balance": "b.from_balance",
    "wallet_filter": "WHERE p.wallet_id IS NOT NULL OR b.checkpoint_last_id IS NULL"
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
),
fresh AS (
    SELECT e.wallet_id, e.id, e.balance_after, x.signed,
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
               AS broken_actual
    FROM fresh GROUP BY wallet_id
)
SELECT b.id, b.organization_id, b.currency, b.balance AS stored,
       b.from_balance + coalesce(p.delta, 0) AS expected, coalesce(p.entries, 0) AS entries,
       coalesce(p.last_id, b.from_id) AS last_id, p.broken_id, p.broken_expected,
       p.broken_actual, b.checkpoint_last_id, b.checkpoint_balance
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
    UNION ALL
    SELECT m.id, CAST(p.leg ->> 'destination_organization_id' AS uuid), p.leg ->> 'currency',
           0, 0, 0, CAST(p.leg ->> 'amount' AS bigint)
    FROM (SELECT t.id, t.postings FROM {posted_from} AND t.kind = 'MULTI') m
    CROSS JOIN LATERAL jsonb_array_elements(m.postings) AS p(leg)
    WHERE p.leg ? 'destination_organization_id'
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
ALL_SETTLEMENTS = text(_SETTLEMENTS.format(scope=""))
SOME_SETTLEMENTS = text(
    _SETTLEMENTS.format(scope="AND e.settlement_id = ANY(CAST(:ids AS uuid[]))")
)

SUMS = text("""
    SELECT organization_id, currency, sum(balance)::bigint AS total FROM wallets
    GROUP BY GROUPING SETS ((organization_id, currency), (currency))
    HAVING sum(balance) <> 0
""")

OVERDRAFTS = text("""
    SELECT id, organization_id, currency, balance - held AS balance, overdraft_limit FROM wallets
    WHERE type NOT IN ('SYSTEM', 'CLEARING') AND balance - held < -overdraft_limit
""")

HELD_MISMATCHES = text("""
    SELECT w.id, w.organization_id, w.currency, w.held,
           coalesce(sum(t.hold_amount), 0)::bigint AS open_holds
    FROM wallets w
    LEFT JOIN transactions t ON t.source_wallet_id = w.id AND t.status = 'HELD'
    GROUP BY w.id HAVING coalesce(sum(t.hold_amount), 0) <> w.held
""")
"""Wallets whose `held` is not the sum of their open holds."""

STUCK = text("""
    SELECT organization_id, count(*) AS stuck, (array_agg(id ORDER BY seq))[1] AS oldest
    FROM transactions
    WHERE status = 'PENDING' AND created_at < now() - make_interval(secs => :after)
    GROUP BY organization_id
""")


FRESH_SETTLEMENTS = text("""
    SELECT DISTINCT e.settlement_id
    FROM wallets w
    LEFT JOIN reconciliation_checkpoints c ON c.wallet_id = w.id
    CROSS JOIN LATERAL (
        SELECT settlement_id FROM ledger_entries e
        WHERE e.wallet_id = w.id AND e.id > coalesce(c.last_entry_id, 0) OFFSET 0
    ) e
    WHERE e.settlement_id IS NOT NULL
""")

ENTRY_ORIGINS = text("""
    SELECT id, transaction_id, settlement_id FROM ledger_entries
    WHERE id = ANY(CAST(:ids AS bigint[]))
""")

WALLETS_OF_TRANSACTIONS = text("""
    SELECT wallet_id FROM ledger_entries
    WHERE transaction_id = ANY(CAST(:tx AS uuid[])) OR settlement_id = ANY(CAST(:st AS uuid[]))
    UNION
    SELECT unnest(ARRAY[source_wallet_id, destination_wallet_id, source_clearing_wallet_id,
                        destination_clearing_wallet_id])
    FROM transactions WHERE id = ANY(CAST(:tx AS uuid[]))
""")


def wallets_check(mode: Mode) -> TextClause:
    """Per wallet: stored balance, balance from entries, first broken `balance_after`."""
    return text(_WALLETS.format(**(FULL if mode is Mode.FULL else INCREMENTAL)))


def books_check(mode: Mode) -> TextClause:
    """Per transaction and organization: unbalanced, missing or stray books."""
    return text(_BOOKS.format(**(FULL if mode is Mode.FULL else INCREMENTAL)))
