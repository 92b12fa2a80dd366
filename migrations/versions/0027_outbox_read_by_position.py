"""the outbox is insert-only: the relay reads it by position

Each event row was written twice: its insert (with an entry in the partial
`ix_outbox_unrelayed`) and the relay's `relayed_at` mark, an UPDATE that could not be
heap-only, so three more index entries and a dead row per event. The relay now keeps one
position, the id of the last event it published (`outbox_relay_cursor`, one row), and
reads the events after it in id order.

Ids are drawn from the identity's sequence when a row is formed, but a transaction commits
later, so a smaller id can become visible after a larger one. The relay never passes an id
it has not seen unless it knows that id's transaction has ended
(`ledger_core.persistence.events.outbox_relay`); for that, a transaction always holds its
transaction id before it draws an outbox id (`outbox_takes_xid`, a statement trigger that
fires before any row of an INSERT is formed), and the ids come only from the sequence
(`GENERATED ALWAYS`, `CACHE 1`).

Events already marked are behind the new position; the first unmarked one is after it.

Revision ID: 0027_outbox_read_by_position
Revises: 0026_time_ordered_event_ids
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

revision: str = "0027_outbox_read_by_position"
down_revision: str | Sequence[str] | None = "0026_time_ordered_event_ids"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

ROLE = "vaultcraft_service"

HORIZON = """
    CREATE FUNCTION vaultcraft_outbox_horizon(OUT last_id bigint, OUT running xid8[])
    LANGUAGE plpgsql VOLATILE AS $$
    DECLARE
        mine xid8;
        snap pg_snapshot;
    BEGIN
        SELECT CASE WHEN s.is_called THEN s.last_value ELSE s.last_value - 1 END
        INTO last_id FROM outbox_id_seq AS s;
        mine := pg_current_xact_id();
        snap := pg_current_snapshot();
        WITH elsewhere AS MATERIALIZED (
            SELECT l.transactionid FROM pg_locks AS l JOIN pg_stat_activity AS a USING (pid)
            WHERE l.locktype = 'transactionid' AND l.mode = 'ExclusiveLock' AND l.granted
              AND a.datid IS NOT NULL
              AND a.datid <> (SELECT oid FROM pg_database WHERE datname = current_database())
        )
        SELECT coalesce(array_agg(r.x), '{}') INTO running FROM (
            SELECT x FROM pg_snapshot_xip(snap) AS x WHERE x <> mine
            UNION ALL
            SELECT CAST(CAST(g AS text) AS xid8) FROM generate_series(
                CAST(CAST(pg_snapshot_xmax(snap) AS text) AS bigint),
                CAST(CAST(mine AS text) AS bigint) - 1) AS g
        ) AS r(x)
        WHERE NOT EXISTS (
            SELECT 1 FROM elsewhere AS e WHERE e.transactionid = CAST(r.x AS xid)
        );
    END $$
"""
"""Every outbox id drawn so far (`last_id`), and every transaction that may still hold one
of them uncommitted (`running`). Run it in a transaction of its own.

The sequence is read first. A transaction that drew an id up to `last_id` took its
transaction id before that, so before `mine`; if it has not ended, the snapshot taken
after `mine` lists it among `xip`, or it is at or past the snapshot's `xmax` (PostgreSQL
lists only transactions below `xmax`), hence in `xmax .. mine - 1`. Once none of `running`
is in progress, every id up to `last_id` is committed or rolled back for good.

Snapshots span the whole server, so the transactions of other databases on it are left out:
those whose transaction id lock a session connected to another database holds. A
transaction takes that lock just after its id, so one not found in `pg_locks` yet stays
in `running`: leaving it in only makes the relay wait for it."""

UPGRADE = [
    "LOCK TABLE outbox IN SHARE ROW EXCLUSIVE MODE",
    """
    CREATE TABLE outbox_relay_cursor (
        singleton boolean NOT NULL DEFAULT true,
        position bigint NOT NULL,
        CONSTRAINT pk_outbox_relay_cursor PRIMARY KEY (singleton),
        CONSTRAINT ck_outbox_relay_cursor_one_row CHECK (singleton)
    )
    """,
    """
    INSERT INTO outbox_relay_cursor (position)
    SELECT coalesce((SELECT min(id) - 1 FROM outbox WHERE relayed_at IS NULL),
                    (SELECT max(id) FROM outbox), 0)
    """,
    "DROP INDEX ix_outbox_unrelayed",
    "ALTER TABLE outbox DROP COLUMN relayed_at",
    "ALTER TABLE outbox ALTER COLUMN id SET GENERATED ALWAYS",
    "ALTER SEQUENCE outbox_id_seq CACHE 1",
    """
    CREATE FUNCTION vaultcraft_take_xid() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
        PERFORM pg_current_xact_id();
        RETURN NULL;
    END $$
    """,
    """
    CREATE TRIGGER outbox_takes_xid BEFORE INSERT ON outbox
    FOR EACH STATEMENT EXECUTE FUNCTION vaultcraft_take_xid()
    """,
    """
    CREATE TRIGGER outbox_insert_only BEFORE UPDATE OR DELETE
    ON outbox FOR EACH STATEMENT EXECUTE FUNCTION vaultcraft_refuse_change()
    """,
    HORIZON,
    f"REVOKE UPDATE, DELETE ON outbox FROM {ROLE}",
    f"REVOKE ALL ON outbox_relay_cursor FROM {ROLE}",
    f"GRANT SELECT, UPDATE ON outbox_relay_cursor TO {ROLE}",
]

DOWNGRADE = [
    "LOCK TABLE outbox IN SHARE ROW EXCLUSIVE MODE",
    "DROP FUNCTION vaultcraft_outbox_horizon()",
    "DROP TRIGGER outbox_insert_only ON outbox",
    "DROP TRIGGER outbox_takes_xid ON outbox",
    "DROP FUNCTION vaultcraft_take_xid()",
    "ALTER TABLE outbox ALTER COLUMN id SET GENERATED BY DEFAULT",
    "ALTER TABLE outbox ADD COLUMN relayed_at timestamp with time zone",
    """
    UPDATE outbox SET relayed_at = now()
    WHERE id <= (SELECT position FROM outbox_relay_cursor)
    """,
    "CREATE INDEX ix_outbox_unrelayed ON outbox (id) WHERE relayed_at IS NULL",
    "DROP TABLE outbox_relay_cursor",
    f"GRANT UPDATE, DELETE ON outbox TO {ROLE}",
]


def upgrade() -> None:
    for statement in UPGRADE:
        op.execute(statement)


def downgrade() -> None:
    for statement in DOWNGRADE:
        op.execute(statement)
