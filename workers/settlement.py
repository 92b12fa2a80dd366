"""The settlement actor's job: net every pair's cross-organization positions, a thin adapter.

The scheduler sends `run_settlement` (no arguments) to the `jobs` queue every minute;
`POST /settlements/run` and `vaultcraft settle` run the same `ledger_core` code directly.
A run settles whatever is unsettled when it looks, one database transaction per pair and
currency, so a duplicate or concurrent delivery only finds less (or nothing) to do.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from uuid import UUID

from sqlalchemy import Engine

from ledger_core.persistence.settlement.settle import SkippedPair
from ledger_core.services.settlement import settle_pairs
from ledger_core.settlement import Settlement
from runtime import metrics
from workers import db

log = logging.getLogger("vaultcraft.settlement")


def settle_now(engine: Engine, organization_id: UUID | None = None) -> list[Settlement]:
    """Run one settlement pass and report it in logs and metrics."""
    started = time.perf_counter()
    skipped: list[SkippedPair] = []
    written = settle_pairs(engine, organization_id, skipped)
    for pair in skipped:
        metrics.settlement_pairs_skipped_total.labels(pair.reason).inc()
    observe(written, time.perf_counter() - started)
    return written


def observe(written: Sequence[Settlement], elapsed_s: float) -> None:
    metrics.settlements_total.inc(len(written))
    if written:
        log.info(
            "Settlement wrote %d settlements over %d transfers in %.1f ms.",
            len(written),
            sum(s.transfer_count for s in written),
            elapsed_s * 1000,
        )


def run_settlement() -> None:
    """Settle every pair of organizations with unsettled cross-organization transfers."""
    settle_now(db.engine())
