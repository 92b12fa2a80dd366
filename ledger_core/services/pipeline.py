"""How the posting pipeline is doing, as the gateway's readiness check reports it."""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncEngine

from ledger_core.persistence.transfers.pipeline_health import OLDEST_PENDING_AGE


async def oldest_pending_age(engine: AsyncEngine) -> float:
    """Seconds the oldest PENDING transfer has waited; 0 when none waits."""
    async with engine.connect() as conn:
        return float((await conn.execute(OLDEST_PENDING_AGE)).scalar_one())
