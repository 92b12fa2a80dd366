"""Promises 1-5 of `invariants.md`, checked over the whole database in plain SQL.

`check_invariants(conn)` returns every violation it finds (an empty list means the ledger
keeps its promises). Posting tests, the fault suite and the benchmark call it after a
run. It is written independently of the reconciliation job, on purpose: simple queries,
no checkpoints, nothing shared, so a bug in one is not mirrored in the other.

What each promise is checked as (`Violation.kind` in brackets):

1. Double entry. In every transaction, the entries of each organization balance per
   currency [`unbalanced_transaction`] (this implies the per-currency balance over the
   whole transaction); the same per settlement [`unbalanced_settlement`]. A COMPLETED
   transaction has entries in each of its organizations' books (the payee of every
   cross-organization leg of a multi-leg transaction included)
   [`posted_without_entries`]; a transaction that is not COMPLETED has none
   [`entries_without_posting`]. Each entry is in its wallet's organization and currency
   [`entry_wallet_mismatch`], so that "an organization's books" means one thing (the
   database refuses an entry outside its wallet's organization too: its reference to
   `wallets (id, organization_id)`, checked by statement since migration 0029). Each
   cross-organization leg of a multi-leg transaction names the clearing wallets of its
   pair and currency, the payer's for the payee and the payee's for the payer
   [`leg_clearing_wrong`, `expected` the leg's number].
2. Balance = history. A wallet's stored balance is credits minus debits over its entries
   [`balance_mismatch`]; each entry's `balance_after` is the running sum of the wallet's
   entries in id order [`balance_after_wrong`, the wallet's first wrong entry, with
   `count` the number of wrong entries]; id order is also time order, no entry being
   older than the wallet's entry before it, so a balance at an instant is one running
   balance [`entries_out_of_order`, the first such entry, with `count` their number].
3. Zero sum. Per organization and currency [`organization_sum_nonzero`] and per currency
   over the ledger [`ledger_sum_nonzero`], wallet balances sum to zero.
4. No overdraft. No wallet other than SYSTEM or CLEARING is below minus its overdraft
   limit now, open holds included [`overdraft`], nor ever was after any of its entries
   [`overdraft_in_history`, against today's limit]. A wallet's `held` is the sum of its
   open (HELD) holds [`held_mismatch`], and its newest recorded change of `held` says so
   [`held_history_mismatch`].
5. Exactly-once effect. An idempotency key names one transaction per organization
   [`duplicate_idempotency_key`]; no transaction has more entries on one wallet than it
   has legs touching that wallet (one, but for multi-leg transactions, where a leg touches
   its wallets and, across organizations, its clearing wallets), the mark of a
   double posting [`posted_twice`]; with `require_final=True` (after a load, once
   faults have healed), no transaction is still PENDING [`not_final`].

Call it on a connection outside a transaction and it reads one REPEATABLE READ, READ ONLY
snapshot, so it may run while transfers are posting. Inside a transaction, it uses the
caller's.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from uuid import UUID

from sqlalchemy import Connection, text

_SIGNED = "CASE e.direction WHEN 'CREDIT' THEN e.amount ELSE -e.amount END"
_DEBITS = "coalesce(sum(e.amount) FILTER (WHERE e.direction = 'DEBIT'), 0)::bigint"
_CREDITS = "coalesce(sum(e.amount) FILTER (WHERE e.direction = 'CREDIT'), 0)::bigint"

# Every query returns: organization_id, wallet_id, transaction_id, entry_id, currency,
# expected, actual, count. Unused columns are NULL.
_CHECKS: tuple[tuple[int, str, str], ...] = (
    (
        1,
        "unbalanced_transaction",
        f"""
        SELECT organization_id, NULL::uuid, transaction_id, NULL::bigint, currency,
               debits, credits, entries FROM (
            SELECT e.organization_id, e.transaction_id, e.currency, {_DEBITS} AS debits,
                   {_CREDITS} AS credits, count(*) AS entries
            FROM ledger_entries e WHERE e.transaction_id IS NOT NULL
            GROUP BY e.transaction_id, e.organization_id, e.currency) b
        WHERE debits <> credits""",
    ),
    (
        1,
        "unbalanced_settlement",
        f"""
        SELECT organization_id, NULL::uuid, NULL::uuid, NULL::bigint, currency,
               debits, credits, entries FROM (
            SELECT e.organization_id, e.settlement_id, e.currency, {_DEBITS} AS debits,
                   {_CREDITS} AS credits, count(*) AS entries
            FROM ledger_entries e WHERE e.settlement_id IS NOT NULL
            GROUP BY e.settlement_id, e.organization_id, e.currency) b
        WHERE debits <> credits""",
    ),
    (
        1,
        "posted_without_entries",
        """
        SELECT o.org, NULL::uuid, t.id, NULL::bigint, t.currency, t.amount, 0, 0
        FROM transactions t
        CROSS JOIN LATERAL (
            SELECT t.organization_id UNION SELECT t.destination_organization_id
            UNION SELECT CAST(p.leg ->> 'destination_organization_id' AS uuid)
            FROM jsonb_array_elements(coalesce(t.postings, '[]'::jsonb)) AS p(leg)
            WHERE p.leg ? 'destination_organization_id') AS o(org)
        WHERE t.status = 'COMPLETED' AND NOT EXISTS (
            SELECT 1 FROM ledger_entries e
            WHERE e.transaction_id = t.id AND e.organization_id = o.org)""",
    ),
    (
        1,
        "entries_without_posting",
        """
        SELECT t.organization_id, NULL::uuid, t.id, NULL::bigint, t.currency, 0, count(*),
               count(*)
        FROM transactions t JOIN ledger_entries e ON e.transaction_id = t.id
        WHERE t.status <> 'COMPLETED' GROUP BY t.id""",
    ),
    (
        1,
        "entry_wallet_mismatch",
        """
        SELECT e.organization_id, e.wallet_id, e.transaction_id, e.id, e.currency, NULL, NULL, 1
        FROM ledger_entries e JOIN wallets w ON w.id = e.wallet_id
        WHERE e.organization_id <> w.organization_id OR e.currency <> w.currency""",
    ),
    (
        1,
        "leg_clearing_wrong",
        """
        SELECT t.organization_id, NULL::uuid, t.id, NULL::bigint, p.leg ->> 'currency', p.n,
               NULL::bigint, 1
        FROM transactions t
        CROSS JOIN LATERAL jsonb_array_elements(t.postings) WITH ORDINALITY AS p(leg, n)
        WHERE t.kind = 'MULTI' AND p.leg ? 'destination_organization_id' AND NOT (
            EXISTS (SELECT 1 FROM wallets w
                    WHERE w.id = CAST(p.leg ->> 'source_clearing_wallet_id' AS uuid)
                      AND w.type = 'CLEARING' AND w.organization_id = t.organization_id
                      AND w.counterparty_organization_id
                          = CAST(p.leg ->> 'destination_organization_id' AS uuid)
                      AND w.currency = p.leg ->> 'currency')
            AND EXISTS (SELECT 1 FROM wallets w
                    WHERE w.id = CAST(p.leg ->> 'destination_clearing_wallet_id' AS uuid)
                      AND w.type = 'CLEARING' AND w.counterparty_organization_id = t.organization_id
                      AND w.organization_id = CAST(p.leg ->> 'destination_organization_id' AS uuid)
                      AND w.currency = p.leg ->> 'currency'))""",
    ),
    (
        2,
        "balance_mismatch",
        f"""
        SELECT w.organization_id, w.id, NULL::uuid, NULL::bigint, w.currency,
               coalesce(sum({_SIGNED}), 0)::bigint, w.balance, count(e.id)
        FROM wallets w LEFT JOIN ledger_entries e ON e.wallet_id = w.id
        GROUP BY w.id HAVING coalesce(sum({_SIGNED}), 0) <> w.balance""",
    ),
    (
        2,
        "balance_after_wrong",
        f"""
        SELECT DISTINCT ON (wallet_id) organization_id, wallet_id, transaction_id, id,
               currency, running, balance_after, count(*) OVER (PARTITION BY wallet_id)
        FROM (
            SELECT e.*, sum({_SIGNED}) OVER (PARTITION BY e.wallet_id ORDER BY e.id) AS running
            FROM ledger_entries e) r
        WHERE balance_after <> running
        ORDER BY wallet_id, id""",
    ),
    (
        2,
        "entries_out_of_order",
        """
        SELECT DISTINCT ON (wallet_id) organization_id, wallet_id, transaction_id, id,
               currency, NULL::bigint, NULL::bigint, count(*) OVER (PARTITION BY wallet_id)
        FROM (
            SELECT e.*, lag(e.created_at) OVER (PARTITION BY e.wallet_id ORDER BY e.id) AS prev
            FROM ledger_entries e) r
        WHERE created_at < prev
        ORDER BY wallet_id, id""",
    ),
    (
        3,
        "organization_sum_nonzero",
        """
        SELECT organization_id, NULL::uuid, NULL::uuid, NULL::bigint, currency, 0,
               sum(balance)::bigint, count(*)
        FROM wallets GROUP BY organization_id, currency HAVING sum(balance) <> 0""",
    ),
    (
        3,
        "ledger_sum_nonzero",
        """
        SELECT NULL::uuid, NULL::uuid, NULL::uuid, NULL::bigint, currency, 0,
               sum(balance)::bigint, count(*)
        FROM wallets GROUP BY currency HAVING sum(balance) <> 0""",
    ),
    (
        4,
        "overdraft",
        """
        SELECT organization_id, id, NULL::uuid, NULL::bigint, currency, -overdraft_limit,
               balance - held, 1
        FROM wallets
        WHERE type NOT IN ('SYSTEM', 'CLEARING') AND balance - held < -overdraft_limit""",
    ),
    (
        4,
        "held_mismatch",
        """
        SELECT w.organization_id, w.id, NULL::uuid, NULL::bigint, w.currency,
               coalesce(sum(t.hold_amount), 0)::bigint, w.held, count(t.id)
        FROM wallets w
        LEFT JOIN transactions t ON t.source_wallet_id = w.id AND t.status = 'HELD'
        GROUP BY w.id HAVING coalesce(sum(t.hold_amount), 0) <> w.held""",
    ),
    (
        4,
        "held_history_mismatch",
        """
        SELECT w.organization_id, w.id, NULL::uuid, NULL::bigint, w.currency,
               w.held, coalesce(h.held_after, 0), 1
        FROM wallets w
        LEFT JOIN LATERAL (
            SELECT c.held_after FROM wallet_held_changes c WHERE c.wallet_id = w.id
            ORDER BY c.created_at DESC, c.id DESC LIMIT 1) h ON true
        WHERE coalesce(h.held_after, 0) <> w.held""",
    ),
    (
        4,
        "overdraft_in_history",
        """
        SELECT DISTINCT ON (e.wallet_id) e.organization_id, e.wallet_id, e.transaction_id, e.id,
               e.currency, 0, e.balance_after, count(*) OVER (PARTITION BY e.wallet_id)
        FROM ledger_entries e JOIN wallets w ON w.id = e.wallet_id
        WHERE w.type NOT IN ('SYSTEM', 'CLEARING') AND e.balance_after < -w.overdraft_limit
        ORDER BY e.wallet_id, e.id""",
    ),
    (
        5,
        "duplicate_idempotency_key",
        """
        SELECT organization_id, NULL::uuid, min(id::text)::uuid, NULL::bigint, NULL, 1,
               count(*), count(*)
        FROM transactions GROUP BY organization_id, idempotency_key HAVING count(*) > 1""",
    ),
    (
        5,
        "posted_twice",
        """
        SELECT d.org, d.wallet_id, d.transaction_id, d.first_id, d.currency,
               greatest(l.legs, 1), d.n, d.n
        FROM (
            SELECT min(organization_id::text)::uuid AS org, wallet_id, transaction_id,
                   min(id) AS first_id, min(currency) AS currency, count(*) AS n
            FROM ledger_entries WHERE transaction_id IS NOT NULL
            GROUP BY transaction_id, wallet_id HAVING count(*) > 1) d
        JOIN transactions t ON t.id = d.transaction_id
        CROSS JOIN LATERAL (
            SELECT count(*) AS legs
            FROM jsonb_array_elements(coalesce(t.postings, '[]'::jsonb)) AS p(leg)
            WHERE d.wallet_id IN (CAST(p.leg ->> 'source_wallet_id' AS uuid),
                                  CAST(p.leg ->> 'destination_wallet_id' AS uuid),
                                  CAST(p.leg ->> 'source_clearing_wallet_id' AS uuid),
                                  CAST(p.leg ->> 'destination_clearing_wallet_id' AS uuid))) l
        WHERE d.n > greatest(l.legs, 1)""",
    ),
)

_NOT_FINAL = (
    5,
    "not_final",
    """
    SELECT organization_id, NULL::uuid, id, NULL::bigint, currency, NULL, NULL, 1
    FROM transactions WHERE status = 'PENDING'""",
)


@dataclass(frozen=True)
class Violation:
    """One broken promise, located as precisely as the check allows."""

    promise: int
    kind: str
    organization_id: UUID | None
    wallet_id: UUID | None
    transaction_id: UUID | None
    entry_id: int | None
    currency: str | None
    expected: int | None
    actual: int | None
    count: int

    def __str__(self) -> str:
        where = ", ".join(
            f"{name}={value}"
            for name, value in (
                ("org", self.organization_id),
                ("wallet", self.wallet_id),
                ("transaction", self.transaction_id),
                ("entry", self.entry_id),
                ("currency", self.currency),
            )
            if value is not None
        )
        return (
            f"promise {self.promise} {self.kind}: {where}; expected {self.expected},"
            f" actual {self.actual} ({self.count} rows)"
        )


Progress = Callable[[int, int, str], None]
"""Told `(number, total, kind)` as each check starts, for a progress display."""


def check_invariants(
    conn: Connection, *, require_final: bool = False, progress: Progress | None = None
) -> list[Violation]:
    """Every violation of promises 1-5 in the database, in promise order."""
    checks = _CHECKS + ((_NOT_FINAL,) if require_final else ())
    if conn.in_transaction():
        return _run(conn, checks, progress)
    with conn.begin():
        conn.execute(text("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY"))
        conn.execute(text("SET LOCAL work_mem = '256MB'"))
        return _run(conn, checks, progress)


def describe(violations: list[Violation]) -> str:
    """A readable list for assertion messages (the first 50)."""
    lines = [str(v) for v in violations[:50]]
    if len(violations) > 50:
        lines.append(f"... and {len(violations) - 50} more")
    return "\n".join(lines) or "no violations"


def _run(
    conn: Connection, checks: tuple[tuple[int, str, str], ...], progress: Progress | None
) -> list[Violation]:
    found: list[Violation] = []
    for number, (promise, kind, sql) in enumerate(checks, start=1):
        if progress is not None:
            progress(number, len(checks), kind)
        for row in conn.execute(text(sql)):
            found.append(Violation(promise, kind, *_values(row)))
    return found


def _values(row: Any) -> tuple[Any, ...]:
    org, wallet, tx, entry, currency, expected, actual, count = row
    return (
        org,
        wallet,
        tx,
        entry,
        currency,
        None if expected is None else int(expected),
        None if actual is None else int(actual),
        int(count),
    )
