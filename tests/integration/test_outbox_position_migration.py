"""Migration 0027: the relay's position starts just before the first event not yet relayed."""

from __future__ import annotations

from alembic import command
from sqlalchemy import Connection, create_engine, text

from tests.support.databases import alembic_config

BEFORE = "0026_time_ordered_event_ids"
AFTER = "0027_outbox_read_by_position"


def _events(conn: Connection, relayed: list[bool]) -> list[int]:
    org = conn.scalar(
        text("INSERT INTO organizations (name, default_currency) VALUES ('o', 'USD') RETURNING id")
    )
    return [
        conn.execute(
            text(
                "INSERT INTO outbox (organization_id, type, data, relayed_at)"
                " VALUES (:o, 'wallet.status_changed', '{}', CASE WHEN :r THEN now() END)"
                " RETURNING id"
            ),
            {"o": org, "r": done},
        ).scalar_one()
        for done in relayed
    ]


def _position(conn: Connection) -> int:
    return int(conn.execute(text("SELECT position FROM outbox_relay_cursor")).scalar_one())


def test_the_position_starts_before_the_first_unrelayed_event_and_goes_back(
    unmigrated_url: str,
) -> None:
    config = alembic_config(unmigrated_url)
    command.upgrade(config, BEFORE)
    engine = create_engine(unmigrated_url)
    try:
        with engine.begin() as conn:
            ids = _events(conn, [True, True, False, True, False])
        command.upgrade(config, AFTER)
        with engine.begin() as conn:
            assert _position(conn) == ids[1]
        command.downgrade(config, BEFORE)
        with engine.begin() as conn:
            relayed = conn.execute(
                text("SELECT id FROM outbox WHERE relayed_at IS NOT NULL ORDER BY id")
            ).scalars()
            assert list(relayed) == ids[:2]
            ids += _events(conn, [True])  # ids may be given again
            conn.execute(text("DELETE FROM outbox WHERE relayed_at IS NULL"))
        command.upgrade(config, AFTER)
        with engine.begin() as conn:
            assert _position(conn) == ids[-1]  # every event relayed
    finally:
        engine.dispose()


def test_an_empty_outbox_starts_at_zero(unmigrated_url: str) -> None:
    command.upgrade(alembic_config(unmigrated_url), AFTER)
    engine = create_engine(unmigrated_url)
    try:
        with engine.begin() as conn:
            assert _position(conn) == 0
    finally:
        engine.dispose()
