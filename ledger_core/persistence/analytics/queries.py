"""The analytics queries: small, indexed, aggregate SQL for one organization at a time.

Nothing here scans the ledger. Transfer counts and volumes come from `transfer_rollups`
(primary key range on organization, grain and time), top wallets of one UTC day from
`wallet_rollups` (organization and day) joined with the counts of that day on the
organization's wallets (each currency's first `top` by a top-N sort, not a sort of every
wallet), balances from the organization's wallets, the backlog from the
partial index of PENDING transfers, and the rest are `LIMIT`ed lookups by index.
`time_queries` runs each one on a sync connection so the benchmark can report them.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from datetime import UTC, date, datetime, timedelta
from typing import Any
from uuid import UUID

from sqlalchemy import Connection, TextClause, text
from sqlalchemy.ext.asyncio import AsyncConnection

from ledger_core.analytics import DEFAULT_RANGE, TimeRange, time_range, truncate

QUERIES: Mapping[str, TextClause] = {
    "volume": text("""
        SELECT currency, date_trunc(:bucket, bucket_start, 'UTC') AS bucket_at, status,
               sum(transfer_count) AS n, sum(volume) AS v
        FROM transfer_rollups
        WHERE organization_id = :org AND grain = :grain AND bucket_start >= :start
          AND bucket_start < :end
        GROUP BY currency, bucket_at, status
    """),
    "statuses": text("""
        SELECT currency, status, failure_code, sum(transfer_count) AS n, sum(volume) AS v
        FROM transfer_rollups
        WHERE organization_id = :org AND grain = :grain AND bucket_start >= :start
          AND bucket_start < :end
        GROUP BY currency, status, failure_code
        ORDER BY currency, n DESC
    """),
    "top_wallets": text("""
        WITH days AS (
            SELECT coalesce(r.wallet_id, d.id) AS wallet_id,
                   coalesce(r.currency, d.currency) AS currency,
                   coalesce(r.debit_count, 0) + coalesce(d.day_debit_count, 0) AS debit_count,
                   coalesce(r.debit_volume, 0) + coalesce(d.day_debit_volume, 0) AS debit_volume,
                   coalesce(r.credit_count, 0) + coalesce(d.day_credit_count, 0) AS credit_count,
                   coalesce(r.credit_volume, 0) + coalesce(d.day_credit_volume, 0)
                       AS credit_volume
            FROM (SELECT * FROM wallet_rollups WHERE organization_id = :org AND day = :day) AS r
            FULL JOIN (
                SELECT id, currency, day_debit_count, day_debit_volume, day_credit_count,
                       day_credit_volume
                FROM wallets
                WHERE organization_id = :org AND counts_day = :day
                  AND day_debit_count + day_credit_count > 0
            ) AS d ON d.id = r.wallet_id
        )
        SELECT t.*, w.type, w.name,
               row_number() OVER (PARTITION BY t.currency
                                  ORDER BY t.debit_volume + t.credit_volume DESC, t.wallet_id)
                   AS rank
        FROM (SELECT DISTINCT currency FROM days) AS c
        CROSS JOIN LATERAL (
            SELECT * FROM days WHERE days.currency = c.currency
            ORDER BY debit_volume + credit_volume DESC, wallet_id
            LIMIT :top
        ) AS t
        CROSS JOIN LATERAL (SELECT type, name FROM wallets WHERE id = t.wallet_id) AS w
        ORDER BY t.currency, rank
    """),
    "balances": text("""
        SELECT currency, type, count(*) AS wallets, sum(balance) AS balance
        FROM wallets WHERE organization_id = :org
        GROUP BY currency, type ORDER BY currency, type
    """),
    "backlog": text("""
        SELECT currency, count(*) AS n, sum(amount) AS amount, min(created_at) AS oldest
        FROM transactions
        WHERE status = 'PENDING' AND organization_id = :org
        GROUP BY currency ORDER BY currency
    """),
    "reconciliation": text("""
        SELECT r.id, r.organization_id, r.mode, r.status, r.started_at, r.finished_at,
               r.wallets_checked, r.entries_checked, r.error, r.created_at,
               (SELECT count(*) FROM reconciliation_discrepancies AS d
                WHERE d.run_id = r.id AND d.organization_id = :org) AS discrepancies
        FROM reconciliation_runs AS r
        WHERE r.organization_id = :org OR r.organization_id IS NULL
        ORDER BY r.created_at DESC LIMIT 1
    """),
    "positions": text("""
        SELECT w.id, w.counterparty_organization_id, o.name AS counterparty_name, w.currency,
               w.balance
        FROM wallets AS w JOIN organizations AS o ON o.id = w.counterparty_organization_id
        WHERE w.organization_id = :org AND w.type = 'CLEARING'
        ORDER BY w.currency, o.name
    """),
    "settlements": text("""
        SELECT * FROM (
            (SELECT * FROM settlements WHERE payer_organization_id = :org
             ORDER BY created_at DESC LIMIT :recent)
            UNION ALL
            (SELECT * FROM settlements WHERE payee_organization_id = :org
             ORDER BY created_at DESC LIMIT :recent)
        ) AS s ORDER BY created_at DESC LIMIT :recent
    """),
}
"""Every analytics statement by name; the parameters come from `parameters`."""


def parameters(
    organization_id: UUID,
    window: TimeRange,
    *,
    day: date | None = None,
    top: int = 10,
    recent: int = 10,
) -> dict[str, Any]:
    """The bound values every statement draws from (each takes the ones it names).

    Minute charts read minute rollups; hour and day charts read hour rollups. The range is
    widened to whole buckets at its start.
    """
    grain = "minute" if window.bucket == "minute" else "hour"
    return {
        "org": organization_id,
        "bucket": window.bucket,
        "grain": 60 if grain == "minute" else 3600,
        "start": truncate(window.start, grain),
        "end": window.end,
        "day": window.end.astimezone(UTC).date() if day is None else day,
        "top": top,
        "recent": recent,
    }


def _bound(statement: TextClause, params: Mapping[str, Any]) -> dict[str, Any]:
    return {name: params[name] for name in statement._bindparams}


async def fetch(conn: AsyncConnection, name: str, params: Mapping[str, Any]) -> list[Any]:
    """Rows of one analytics statement."""
    statement = QUERIES[name]
    return list(await conn.execute(statement, _bound(statement, params)))


def time_queries(
    conn: Connection, organization_id: UUID | None = None, *, repeat: int = 5
) -> dict[str, float]:
    """Best-of-`repeat` milliseconds of each analytics statement over the last 24 hours.

    Without an organization, the one with the most wallets is measured (the benchmark's).
    """
    if organization_id is None:
        organization_id = conn.scalar(
            text("SELECT organization_id FROM wallets GROUP BY 1 ORDER BY count(*) DESC LIMIT 1")
        )
        if organization_id is None:
            return {}
    now = datetime.now(UTC)
    params = parameters(organization_id, time_range(now - DEFAULT_RANGE, now, None, now))
    timings: dict[str, float] = {}
    for name, statement in QUERIES.items():
        best = timedelta.max.total_seconds()
        for _ in range(repeat):
            started = time.perf_counter()
            conn.execute(statement, _bound(statement, params)).all()
            best = min(best, time.perf_counter() - started)
        timings[name] = round(best * 1000, 3)
    return timings
