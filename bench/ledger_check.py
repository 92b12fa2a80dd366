"""Invariants 1-5 of invariants.md, checked from the database alone with plain SQL.

The benchmark runs this after every scenario: a fast result on a broken ledger is worth
nothing. Each check returns at most a few example rows, so a failure says what is wrong.
"""

from __future__ import annotations

from dataclasses import dataclass

import psycopg

CHECKS: dict[str, str] = {
    # 1. Every posted transaction balances per currency; nothing else has entries.
    "double_entry": """
        SELECT t.id::text, t.status,
               coalesce(sum(e.amount) FILTER (WHERE e.direction = 'DEBIT'), 0) AS debits,
               coalesce(sum(e.amount) FILTER (WHERE e.direction = 'CREDIT'), 0) AS credits
        FROM transactions AS t LEFT JOIN ledger_entries AS e ON e.transaction_id = t.id
        GROUP BY t.id, t.status
        HAVING (t.status = 'COMPLETED' AND (count(e.id) = 0
                OR coalesce(sum(e.amount) FILTER (WHERE e.direction = 'DEBIT'), 0)
                   <> coalesce(sum(e.amount) FILTER (WHERE e.direction = 'CREDIT'), 0)))
            OR (t.status <> 'COMPLETED' AND count(e.id) > 0)
        LIMIT 5
    """,
    "entry_currency": """
        SELECT e.id::text, e.currency, w.currency FROM ledger_entries AS e
        JOIN wallets AS w ON w.id = e.wallet_id
        WHERE e.currency <> w.currency LIMIT 5
    """,
    # 2. Stored balance = credits - debits, and balance_after is the running balance.
    "balance_equals_history": """
        SELECT w.id::text, w.balance, coalesce(h.net, 0) AS net
        FROM wallets AS w LEFT JOIN (
            SELECT wallet_id, sum(CASE direction WHEN 'CREDIT' THEN amount ELSE -amount END) AS net
            FROM ledger_entries GROUP BY wallet_id
        ) AS h ON h.wallet_id = w.id
        WHERE w.balance <> coalesce(h.net, 0) LIMIT 5
    """,
    "running_balance": """
        SELECT id::text, wallet_id::text, balance_after, running FROM (
            SELECT id, wallet_id, balance_after,
                   sum(CASE direction WHEN 'CREDIT' THEN amount ELSE -amount END)
                       OVER (PARTITION BY wallet_id ORDER BY id) AS running
            FROM ledger_entries
        ) AS r WHERE balance_after <> running LIMIT 5
    """,
    # 3. Per currency, each organization's wallets sum to zero, and so does the ledger.
    "zero_sum_per_organization": """
        SELECT organization_id::text, currency, sum(balance) FROM wallets
        GROUP BY organization_id, currency HAVING sum(balance) <> 0 LIMIT 5
    """,
    "zero_sum_ledger": """
        SELECT currency, sum(balance) FROM wallets GROUP BY currency HAVING sum(balance) <> 0
    """,
    # 4. Only SYSTEM and CLEARING wallets ever go below zero.
    "no_overdraft": """
        SELECT w.id::text, w.type, min(e.balance_after) AS lowest, w.balance
        FROM wallets AS w LEFT JOIN ledger_entries AS e ON e.wallet_id = w.id
        WHERE w.type NOT IN ('SYSTEM', 'CLEARING')
        GROUP BY w.id, w.type, w.balance
        HAVING w.balance < 0 OR min(e.balance_after) < 0 LIMIT 5
    """,
    # 5. One transaction per idempotency key and organization; posted at most once.
    "idempotency_unique": """
        SELECT organization_id::text, idempotency_key, count(*) FROM transactions
        GROUP BY organization_id, idempotency_key HAVING count(*) > 1 LIMIT 5
    """,
    "posted_once": """
        SELECT t.id::text, t.kind, count(e.id) FROM transactions AS t
        JOIN ledger_entries AS e ON e.transaction_id = t.id
        GROUP BY t.id, t.kind
        HAVING count(e.id) <> CASE t.kind WHEN 'CROSS_ORG' THEN 4 ELSE 2 END LIMIT 5
    """,
}

PENDING_CHECK = "SELECT count(*) FROM transactions WHERE status = 'PENDING'"


@dataclass(frozen=True)
class Violation:
    """One broken invariant with a few example rows."""

    check: str
    examples: list[tuple[object, ...]]

    def __str__(self) -> str:
        return f"{self.check}: {self.examples}"


def check_ledger(conn: psycopg.Connection[tuple[object, ...]]) -> list[Violation]:
    """Run every check; an empty list means invariants 1-5 hold (no transfer left PENDING)."""
    found: list[Violation] = []
    for name, sql in CHECKS.items():
        rows = conn.execute(sql).fetchall()  # fixed SQL
        if rows:
            found.append(Violation(name, rows))
    (pending,) = conn.execute(PENDING_CHECK).fetchone() or (0,)
    if pending:
        found.append(Violation("every_accepted_transfer_final", [(pending,)]))
    return found


def check_ledger_at(url: str) -> list[Violation]:
    """Open a connection to `url` and run every check."""
    from bench.pgbench_reference import libpq_url

    with psycopg.connect(libpq_url(url)) as conn:
        return check_ledger(conn)
