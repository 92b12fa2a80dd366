"""The benchmark reports every analytics statement's time, for its organization."""

from __future__ import annotations

import uuid

from bench.scenarios import analytics_timings
from ledger_core.persistence.analytics.queries import QUERIES


def test_every_analytics_statement_is_timed(database_url: str) -> None:
    timings = analytics_timings(database_url, str(uuid.uuid4()))
    assert set(timings) == set(QUERIES)
    assert all(ms >= 0 for ms in timings.values())
