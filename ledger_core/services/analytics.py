"""The analytics behind the dashboard (admins only): one named aggregate over a time range."""

from __future__ import annotations

from typing import Any

from sqlalchemy.ext.asyncio import AsyncEngine

from ledger_core.accounts import Principal, require_admin
from ledger_core.analytics import TimeRange
from ledger_core.persistence.analytics.queries import fetch, parameters


async def aggregate(
    engine: AsyncEngine, principal: Principal, name: str, window: TimeRange, **extra: Any
) -> list[Any]:
    """The rows of aggregate `name` for the caller's organization over `window`."""
    require_admin(principal)
    async with engine.connect() as conn:
        return await fetch(conn, name, parameters(principal.organization_id, window, **extra))
