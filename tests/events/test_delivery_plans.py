"""A delivery's end is written through its key, however many deliveries wait: against a
real PostgreSQL, in a database of the test's own (the test changes its statistics)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from sqlalchemy import Engine, text

from ledger_core.persistence.events.deliveries import _FINISH, _GIVE_UP
from tests.support.databases import fresh_engine
from tests.support.ledger import create_book
from tests.support.plans import plan_scans


@pytest.fixture
def scratch(service_urls: tuple[str, str]) -> Iterator[Engine]:
    with fresh_engine(service_urls[0], "vaultcraft_deliveries") as engine:
        yield engine


DELIVERIES = text("""
    INSERT INTO webhook_deliveries (webhook_id, event_id, organization_id, status, origin,
                                    next_attempt_at)
    SELECT :webhook, :event, :org, :status, 'REDELIVERY', now()
    FROM generate_series(1, :count)
""")


def test_a_delivery_ends_by_key_behind_a_backlog_the_statistics_missed(scratch: Engine) -> None:
    """Statistics taken while nothing waited, then 30,000 deliveries waiting on a slow
    receiver: ending one must not walk every waiting delivery's index entry."""
    book = create_book(scratch, 1)
    org = book.organization_id
    with scratch.begin() as conn:
        conn.execute(text("ALTER TABLE webhook_deliveries SET (autovacuum_enabled = off)"))
        webhook = conn.execute(
            text(
                "INSERT INTO webhooks (organization_id, url, events, secret)"
                " VALUES (:o, 'https://receiver.example/hook', '[]', 'secret') RETURNING id"
            ),
            {"o": org},
        ).scalar_one()
        event = conn.execute(
            text(
                "INSERT INTO outbox (organization_id, type, data)"
                " VALUES (:o, 'transfer.completed', '{}') RETURNING event_id"
            ),
            {"o": org},
        ).scalar_one()
        rows = {"webhook": webhook, "event": event, "org": org}
        conn.execute(DELIVERIES, {**rows, "status": "SUCCEEDED", "count": 20_000})
    with scratch.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        conn.execute(text("VACUUM ANALYZE webhook_deliveries"))
    with scratch.begin() as conn:
        conn.execute(DELIVERIES, {**rows, "status": "PENDING", "count": 30_000})
        delivery = conn.execute(
            text("SELECT id FROM webhook_deliveries WHERE status = 'PENDING' LIMIT 1")
        ).scalar_one()

    explain = "EXPLAIN (ANALYZE, COSTS OFF, TIMING OFF, FORMAT JSON) "
    params = {"id": delivery, "attempt": 0, "status": "SUCCEEDED", "status_code": 200}
    with scratch.connect() as conn, conn.begin():
        plans = [
            conn.execute(text(explain + str(statement)), params).scalar_one()[0]["Plan"]
            for statement, params in (
                (_FINISH, {**params, "error": None, "delay_s": 0}),
                (_GIVE_UP, {"id": delivery, "error": "gave up"}),
            )
        ]
        conn.rollback()

    for plan in plans:
        scans = [scan for scan in plan_scans(plan) if scan[1] != "None"]
        assert not any("due" in where for _, where, _ in scans), scans
        assert all(rows <= 1 for _, _, rows in scans), scans
