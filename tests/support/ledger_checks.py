"""What fault and concurrency tests check afterwards, from the database alone, in plain SQL.

`assert_ledger_sound` runs the invariant checker of promises 1-5; `double_postings` looks
for the marks a transfer posted twice would leave even where the checker would not see
them (entries from two postings, two events for one state change); `unfinished` finds
accepted transfers that never reached a final state.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from uuid import UUID

from sqlalchemy import Connection, Engine, text

from ledger_core.persistence.reconciliation.invariants import check_invariants, describe

FINAL = ("COMPLETED", "FAILED", "CANCELLED", "VOIDED", "EXPIRED")

_ENTRIES_PER_POSTING = text("""
    SELECT t.id, count(e.id) AS entries, t.expected
    FROM (SELECT id, CASE WHEN postings IS NOT NULL THEN (
                              SELECT sum(CASE WHEN leg ? 'destination_organization_id'
                                              THEN 4 ELSE 2 END)
                              FROM jsonb_array_elements(postings) AS leg)
                          WHEN destination_organization_id <> organization_id THEN 4
                          ELSE 2 END AS expected
          FROM transactions WHERE status = 'COMPLETED') t
    LEFT JOIN ledger_entries e ON e.transaction_id = t.id
    GROUP BY t.id, t.expected
    HAVING count(e.id) <> t.expected
""")

_EVENTS_PER_STATE_CHANGE = text("""
    WITH parties AS (
        SELECT t.id, t.status, t.hold_amount, o.org
        FROM transactions t
        CROSS JOIN LATERAL (
            SELECT t.organization_id UNION SELECT t.destination_organization_id
            UNION SELECT CAST(leg ->> 'destination_organization_id' AS uuid)
            FROM jsonb_array_elements(coalesce(t.postings, '[]')) AS leg
            WHERE leg ? 'destination_organization_id'
        ) AS o(org)
    ), events AS (
        SELECT organization_id, CAST(data ->> 'id' AS uuid) AS id, count(*) AS n
        FROM outbox WHERE type LIKE 'transfer.%' GROUP BY 1, 2
    )
    SELECT p.id, p.org, p.status, coalesce(ev.n, 0)
    FROM parties p LEFT JOIN events ev ON ev.id = p.id AND ev.organization_id = p.org
    WHERE coalesce(ev.n, 0) <> CASE
        WHEN p.status = 'PENDING' THEN 0
        WHEN p.hold_amount IS NOT NULL AND p.status IN ('COMPLETED', 'VOIDED', 'EXPIRED') THEN 2
        ELSE 1 END
""")

_STRAY_EVENTS = text("""
    SELECT o.id FROM outbox o
    WHERE o.type LIKE 'transfer.%' AND NOT EXISTS (
        SELECT 1 FROM transactions t WHERE t.id = CAST(o.data ->> 'id' AS uuid))
""")


def assert_ledger_sound(engine: Engine) -> None:
    """Promises 1-5 hold and nothing is PENDING."""
    with engine.connect() as conn:
        violations = check_invariants(conn, require_final=True)
    assert violations == [], describe(violations)


def double_postings(conn: Connection) -> list[str]:
    """Every mark of a transfer posted more than once (or of a state change without its event).

    A COMPLETED transfer has exactly 2 entries (4 across organizations), a multi-leg
    transaction 2 a leg (4 a leg into another organization); each final transfer has
    exactly one `transfer.*` outbox event per organization involved (every payee of a
    multi-leg one too), and a PENDING one has none.
    """
    found = [
        f"transaction {tx} has {n} entries, expected {want}"
        for tx, n, want in conn.execute(_ENTRIES_PER_POSTING)
    ]
    found += [
        f"transaction {tx} ({status}) has {n} transfer events for organization {org}"
        for tx, org, status, n in conn.execute(_EVENTS_PER_STATE_CHANGE)
    ]
    found += [f"outbox event {n} names no transaction" for (n,) in conn.execute(_STRAY_EVENTS)]
    return found


def unfinished(conn: Connection, ids: Iterable[UUID | str]) -> list[str]:
    """Which of these transaction ids are missing or not final."""
    wanted = sorted({str(i) for i in ids})
    found = dict(
        conn.execute(
            text("SELECT id::text, status FROM transactions WHERE id = ANY(CAST(:ids AS uuid[]))"),
            {"ids": wanted},
        ).all()
    )
    return [f"{i}: {found.get(i, 'missing')}" for i in wanted if found.get(i) not in FINAL]


def final_states(conn: Connection, ids: list[UUID]) -> list[tuple[str, str | None]]:
    """Each transfer's status and failure code, in the order of `ids`."""
    rows = conn.execute(
        text("SELECT id, status, failure_code FROM transactions WHERE id = ANY(:ids)"),
        {"ids": ids},
    )
    by_id = {r.id: (r.status, r.failure_code) for r in rows}
    return [by_id[i] for i in ids]


def pending_count(engine: Engine, org: str | None = None) -> int:
    """PENDING transfers of one organization, or of all of them."""
    sql = "SELECT count(*) FROM transactions WHERE status = 'PENDING'"
    if org is not None:
        sql += " AND organization_id = :o"
    with engine.connect() as conn:
        return int(conn.execute(text(sql), {"o": org}).scalar_one())


def wait_until(predicate: Callable[[], bool], timeout_s: float, what: str) -> None:
    deadline = time.monotonic() + timeout_s
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.1)


def cents(amount: str) -> int:
    """A 2-decimal amount string as minor units (balances may be zero, so not `parse_amount`)."""
    whole, _, frac = amount.partition(".")
    return int(whole) * 100 + int(frac or "0")
