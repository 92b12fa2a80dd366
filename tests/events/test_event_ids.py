"""Outbox event ids are time-ordered (UUID version 7), so their unique index grows at its
right edge instead of on random pages."""

from __future__ import annotations

import time
import uuid

from sqlalchemy import Engine, text

from ledger_core.persistence.events.outbox import outbox_insert, outbox_insert_many
from tests.support.ledger import create_book


def test_event_ids_are_version_7_and_follow_the_clock(engine: Engine) -> None:
    book = create_book(engine, 0)
    org = book.organization_id
    written: list[uuid.UUID] = []
    for _ in range(3):
        with engine.begin() as conn:
            statement, params = outbox_insert_many([(org, "wallet.status_changed", {"n": 1})] * 2)
            written += conn.execute(text(str(statement) + " RETURNING event_id"), params).scalars()
            written.append(
                conn.execute(
                    outbox_insert("wallet.status_changed", org, {"n": 2}).returning(
                        text("event_id")
                    )
                ).scalar_one()
            )
        time.sleep(0.002)

    now_ms = time.time() * 1000
    assert [e.version for e in written] == [7] * len(written)
    assert all(abs((e.int >> 80) - now_ms) < 60_000 for e in written)
    stamps = [e.int >> 80 for e in written]
    assert stamps == sorted(stamps)
    assert len(set(written)) == len(written)
