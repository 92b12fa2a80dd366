"""Build a large, valid ledger with a few set-based statements, for benchmarks and tests.

The generated books obey every money invariant: each organization gets a SYSTEM wallet
that funds its PRIMARY wallets, then transfers move random amounts between PRIMARY wallets
of the same organization. Every transfer is a COMPLETED transaction with a DEBIT and a
CREDIT entry; `balance_after` is computed with a window over each wallet in posting
order and the final sums become the stored balances. Funding is sized so no PRIMARY
wallet can go below zero whatever the random draw.

Entry ids are reserved as one block of the identity sequence while `ledger_entries` is
locked against other writers, so posting order is exactly id order. Meant for a quiet
database (a benchmark's setup, a test): concurrent posting waits for the lock.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from uuid import UUID

from sqlalchemy import Connection, text
from sqlalchemy.exc import DBAPIError

MAX_AMOUNT = 100_000
"""Largest transfer between PRIMARY wallets, in minor units."""


@dataclass(frozen=True)
class GeneratedLedger:
    organization_ids: tuple[UUID, ...]
    wallets: int
    transactions: int
    entries: int


_PLAN = """
CREATE TEMP TABLE gen_wallets ON COMMIT DROP AS
SELECT o.id AS org, g.k, gen_random_uuid() AS id
FROM unnest(CAST(:orgs AS uuid[])) AS o(id) CROSS JOIN generate_series(0, :per_org - 1) g(k);

CREATE TEMP TABLE gen_transfers ON COMMIT DROP AS
SELECT w.k + 1 + (o.n - 1) * :per_org AS n, w.org, s.id AS src, w.id AS dst,
       CAST(:funding AS bigint) AS amount, gen_random_uuid() AS tid
FROM gen_wallets w
JOIN unnest(CAST(:orgs AS uuid[])) WITH ORDINALITY AS o(id, n) ON o.id = w.org
JOIN wallets s ON s.organization_id = w.org AND s.type = 'SYSTEM'
WHERE w.k + 1 + (o.n - 1) * :per_org <= :transfers;

INSERT INTO gen_transfers (n, org, src, dst, amount, tid)
SELECT p.n, p.org, a.id, b.id, p.amount, gen_random_uuid()
FROM (
    SELECT g.n, o.id AS org, floor(random() * :per_org)::int AS k1,
           floor(random() * (:per_org - 1))::int AS hop,
           1 + floor(random() * :max_amount)::bigint AS amount
    FROM generate_series(:funded + 1, :transfers) g(n)
    JOIN unnest(CAST(:orgs AS uuid[])) WITH ORDINALITY AS o(id, i)
      ON o.i = 1 + g.n % cardinality(CAST(:orgs AS uuid[]))
) p
JOIN gen_wallets a ON a.org = p.org AND a.k = p.k1
JOIN gen_wallets b ON b.org = p.org AND b.k = (p.k1 + 1 + p.hop) % :per_org;
"""

_WALLETS = """
INSERT INTO wallets (id, organization_id, type, currency, name)
SELECT id, org, 'PRIMARY', :currency, 'generated ' || k FROM gen_wallets;
"""

_TRANSACTIONS = """
INSERT INTO transactions (id, organization_id, destination_organization_id, idempotency_key,
    request_hash, kind, source_wallet_id, destination_wallet_id, amount, currency, status,
    posted_at)
SELECT tid, org, org, 'generated-' || tid, md5(tid::text), 'TRANSFER', src, dst, amount,
       :currency, 'COMPLETED', now()
FROM gen_transfers ORDER BY n;
"""

_ENTRIES = """
INSERT INTO ledger_entries (id, transaction_id, wallet_id, organization_id, direction, amount,
    currency, balance_after)
SELECT :base + x.ord - 2, x.tid, x.wallet_id, x.org, x.direction, x.amount, :currency,
       sum(x.signed) OVER (PARTITION BY x.wallet_id ORDER BY x.ord)
FROM (
    SELECT t.n * 2 + l.leg AS ord, t.tid, t.org, t.amount,
           CASE l.leg WHEN 0 THEN t.src ELSE t.dst END AS wallet_id,
           CASE l.leg WHEN 0 THEN 'DEBIT' ELSE 'CREDIT' END AS direction,
           CASE l.leg WHEN 0 THEN -t.amount ELSE t.amount END AS signed
    FROM gen_transfers t CROSS JOIN (VALUES (0), (1)) AS l(leg)
) x
ORDER BY x.ord;

UPDATE wallets w SET balance = s.total, updated_at = now()
FROM (
    SELECT wallet_id, sum(CASE direction WHEN 'CREDIT' THEN amount ELSE -amount END) AS total
    FROM ledger_entries WHERE id >= :base AND id < :base + :entries GROUP BY wallet_id
) s
WHERE w.id = s.wallet_id;
"""


def generate_ledger(
    conn: Connection,
    entries: int,
    *,
    wallets_per_org: int = 1000,
    organizations: int = 1,
    currency: str = "USD",
    seed: float | None = None,
) -> GeneratedLedger:
    """Add `entries` entries (rounded down to whole transfers) in new organizations.

    Runs in the caller's transaction; commit it to keep the ledger.
    """
    if wallets_per_org < 2 or organizations < 1 or entries < 2:
        raise ValueError("need at least one organization, two wallets each and one transfer")
    transfers = entries // 2
    funded = min(transfers, wallets_per_org * organizations)
    # Each PRIMARY wallet pays out at most MAX_AMOUNT per transfer it sends; fund it for
    # far more transfers than it can draw (mean plus a wide tail), so none can overdraw.
    mean = transfers / (wallets_per_org * organizations)
    funding = MAX_AMOUNT * math.ceil(2 * mean + 10 * math.sqrt(mean) + 100)
    if seed is not None:
        conn.execute(text("SELECT setseed(:seed)"), {"seed": seed})
    orgs = list(
        conn.execute(
            text("""
                INSERT INTO organizations (name, default_currency)
                SELECT 'Generated ledger ' || g, :currency FROM generate_series(1, :n) g
                RETURNING id
            """),
            {"n": organizations, "currency": currency},
        ).scalars()
    )
    conn.execute(
        text("""
            INSERT INTO wallets (organization_id, type, currency, name)
            SELECT o, 'SYSTEM', :currency, 'system' FROM unnest(CAST(:orgs AS uuid[])) AS o
        """),
        {"orgs": orgs, "currency": currency},
    )
    params = {
        "orgs": orgs,
        "per_org": wallets_per_org,
        "transfers": transfers,
        "funded": funded,
        "funding": funding,
        "max_amount": MAX_AMOUNT,
        "currency": currency,
        "entries": transfers * 2,
    }
    _skip_foreign_key_checks(conn)
    _run_script(conn, _PLAN, params)
    _run_script(conn, _WALLETS, params)
    _run_script(conn, _TRANSACTIONS, params)
    conn.execute(text("LOCK TABLE ledger_entries IN EXCLUSIVE MODE"))
    params["base"] = conn.execute(
        text("""
            SELECT setval(s, nextval(s) + :count - 1) - :count + 1
            FROM CAST(pg_get_serial_sequence('ledger_entries', 'id') AS regclass) AS s
        """),
        {"count": transfers * 2},
    ).scalar_one()
    _run_script(conn, _ENTRIES, params)
    return GeneratedLedger(
        organization_ids=tuple(orgs),
        wallets=(wallets_per_org + 1) * organizations,
        transactions=transfers,
        entries=transfers * 2,
    )


def _skip_foreign_key_checks(conn: Connection) -> None:
    """Foreign-key triggers are most of a bulk insert's cost, and these rows reference
    only rows this function just wrote. Skipping them needs a superuser; without one the
    generator is just slower."""
    try:
        with conn.begin_nested():
            conn.execute(text("SET LOCAL session_replication_role = replica"))
    except DBAPIError:
        pass


def _run_script(conn: Connection, script: str, params: dict[str, object]) -> None:
    """Run `;`-separated statements, each with the parameters it names."""
    for statement in filter(str.strip, script.split(";")):
        names = {k: v for k, v in params.items() if f":{k}" in statement}
        conn.execute(text(statement), names)
