"""Analytics for an organization's admins: the JSON behind the `/dashboard` page.

Each route runs one or two aggregate statements (`ledger_core.services.analytics`)
(rollups and indexed lookups, never a scan of the ledger) over a bounded time range.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from aiohttp import web

from gateway.auth import principal
from gateway.registry import RouteTable
from gateway.responses import json_response
from gateway.schemas.analytics import (
    BacklogOut,
    BalancesOut,
    LatestReconciliationOut,
    RangeQuery,
    SettlementsOut,
    StatusesOut,
    TopWalletsOut,
    TopWalletsQuery,
    VolumeOut,
)
from gateway.state import ENGINE
from ledger_core.analytics import TimeRange, series, time_range
from ledger_core.money import format_amount
from ledger_core.services.analytics import aggregate
from ledger_core.timestamps import rfc3339, rfc3339_or_none

routes = RouteTable(tag="Analytics")


async def _rows(request: web.Request, name: str, query: RangeQuery | None = None) -> list[Any]:
    rows, _ = await _ranged(request, name, query)
    return rows


async def _ranged(
    request: web.Request, name: str, query: RangeQuery | None, **extra: Any
) -> tuple[list[Any], TimeRange]:
    now = datetime.now(UTC)
    if query is None:
        window = time_range(None, None, None, now)
    else:
        window = time_range(query.from_, query.to, query.bucket, now)
    rows = await aggregate(request.app[ENGINE], principal(request), name, window, **extra)
    return rows, window


def _range(window: TimeRange) -> dict[str, str]:
    return {"from": rfc3339(window.start), "to": rfc3339(window.end), "bucket": window.bucket}


@routes.get("/analytics/volume", query=RangeQuery, response=VolumeOut, errors=(403,))
async def analytics_volume(request: web.Request, query: RangeQuery) -> web.Response:
    """Transfers over time, per currency (admin)

    Per bucket: how many transfers reached a final state, by status, and the volume of
    the completed ones. Cross-organization transfers count for both organizations.
    """
    rows, window = await _ranged(request, "volume", query)
    data = series(((r.currency, r.bucket_at, r.status, r.n, r.v) for r in rows), window)
    return json_response({**_range(window), "data": data})


@routes.get("/analytics/statuses", query=RangeQuery, response=StatusesOut, errors=(403,))
async def analytics_statuses(request: web.Request, query: RangeQuery) -> web.Response:
    """Final statuses and failure codes in the range, per currency (admin)

    For the dashboard: how many transfers became COMPLETED, FAILED and CANCELLED between
    `from` and `to`, and the failures per `failure_code`.
    """
    rows, window = await _ranged(request, "statuses", query)
    out: dict[str, dict[str, Any]] = {}
    for r in rows:
        slot = out.setdefault(r.currency, {"currency": r.currency, "by_status": {}, "failures": []})
        totals = slot["by_status"].setdefault(r.status, {"count": 0, "volume": 0})
        totals["count"] += int(r.n)
        totals["volume"] += int(r.v)
        if r.failure_code:
            volume = format_amount(int(r.v), r.currency)
            slot["failures"].append({"code": r.failure_code, "count": int(r.n), "volume": volume})
    for slot in out.values():
        for totals in slot["by_status"].values():
            totals["volume"] = format_amount(totals["volume"], slot["currency"])
    return json_response({**_range(window), "data": [out[c] for c in sorted(out)]})


@routes.get("/analytics/top-wallets", query=TopWalletsQuery, response=TopWalletsOut, errors=(403,))
async def analytics_top_wallets(request: web.Request, query: TopWalletsQuery) -> web.Response:
    """The wallets that moved the most money in one UTC day, per currency (admin)

    Volume is debits plus credits of completed transfers; the day defaults to today.
    """
    rows, window = await _ranged(request, "top_wallets", None, day=query.day, top=query.limit)
    out: dict[str, list[dict[str, Any]]] = {}
    for r in rows:
        c = r.currency
        out.setdefault(c, []).append(
            {
                "wallet_id": str(r.wallet_id),
                "type": r.type,
                "name": r.name,
                "debit_count": int(r.debit_count),
                "debit_volume": format_amount(int(r.debit_volume), c),
                "credit_count": int(r.credit_count),
                "credit_volume": format_amount(int(r.credit_volume), c),
                "volume": format_amount(int(r.debit_volume) + int(r.credit_volume), c),
            }
        )
    day = query.day or window.end.astimezone(UTC).date()
    data = [{"currency": c, "wallets": out[c]} for c in sorted(out)]
    return json_response({"day": day.isoformat(), "data": data})


@routes.get("/analytics/balances", response=BalancesOut, errors=(403,))
async def analytics_balances(request: web.Request) -> web.Response:
    """Balances by wallet type, per currency, now (admin)

    For the dashboard: the sum of balances per wallet type, how many wallets per status, and
    how many transfers per status.
    """
    out: dict[str, dict[str, Any]] = {}
    for r in await _rows(request, "balances"):
        slot = out.setdefault(r.currency, {"currency": r.currency, "by_type": {}})
        slot["by_type"][r.type] = {
            "wallets": int(r.wallets),
            "balance": format_amount(int(r.balance), r.currency),
        }
    return json_response({"data": [out[c] for c in sorted(out)]})


@routes.get("/analytics/backlog", response=BacklogOut, errors=(403,))
async def analytics_backlog(request: web.Request) -> web.Response:
    """Transfers still waiting to be posted, per currency, and how old the oldest is (admin)

    For the dashboard: PENDING transfers per currency; a growing age means the posting
    workers are behind or stopped.
    """
    now = datetime.now(UTC)
    data = [
        {
            "currency": r.currency,
            "count": int(r.n),
            "amount": format_amount(int(r.amount), r.currency),
            "oldest_created_at": rfc3339(r.oldest),
            "oldest_age_s": round(max(0.0, (now - r.oldest).total_seconds()), 3),
        }
        for r in await _rows(request, "backlog")
    ]
    return json_response({"data": data})


@routes.get("/analytics/reconciliation", response=LatestReconciliationOut, errors=(403,))
async def analytics_reconciliation(request: web.Request) -> web.Response:
    """The latest reconciliation run covering the organization (admin)

    A ledger-wide run reports only this organization's discrepancies, and not the
    ledger-wide counts of wallets and entries checked.
    """
    rows = await _rows(request, "reconciliation")
    if not rows:
        return json_response({"run": None})
    r = rows[0]
    own = r.organization_id is not None
    run = {
        "id": str(r.id),
        "scope": "organization" if own else "ledger",
        "mode": r.mode,
        "status": r.status,
        "started_at": rfc3339_or_none(r.started_at),
        "finished_at": rfc3339_or_none(r.finished_at),
        "wallets_checked": int(r.wallets_checked) if own else None,
        "entries_checked": int(r.entries_checked) if own else None,
        "discrepancy_count": int(r.discrepancies),
        "error": r.error if own else None,
        "created_at": rfc3339(r.created_at),
    }
    return json_response({"run": run})


@routes.get("/analytics/settlements", response=SettlementsOut, errors=(403,))
async def analytics_settlements(request: web.Request) -> web.Response:
    """Clearing positions with each counterparty now, and the latest settlements (admin)

    For the dashboard: what this organization owes and is owed in each currency through its
    CLEARING wallets, and the most recent settlements it took part in.
    """
    positions = [
        {
            "wallet_id": str(r.id),
            "counterparty_organization_id": str(r.counterparty_organization_id),
            "counterparty_name": r.counterparty_name,
            "currency": r.currency,
            "balance": format_amount(int(r.balance), r.currency),
        }
        for r in await _rows(request, "positions")
    ]
    recent = [
        {
            "id": str(r.id),
            "payer_organization_id": str(r.payer_organization_id),
            "payee_organization_id": str(r.payee_organization_id),
            "currency": r.currency,
            "net_amount": format_amount(int(r.net_amount), r.currency),
            "transfer_count": int(r.transfer_count),
            "status": r.status,
            "created_at": rfc3339(r.created_at),
        }
        for r in await _rows(request, "settlements")
    ]
    return json_response({"positions": positions, "recent": recent})
