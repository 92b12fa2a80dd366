"""outbox event ids are time-ordered (UUID version 7)

`uq_outbox_event_id` took each new event's entry on a random page of an index that grows
by one entry per event: at a million stored transfers its pages no longer stayed in
shared buffers, and posting read them back one event at a time (BENCHMARKS.md, "Where
PostgreSQL's extra work at `scale` goes"). Version 7 ids begin with the time in
milliseconds, so new entries land on the index's rightmost pages, as the transactions'
own ids (`uuid7` at intake) already do. Ids stay random enough to be unguessable (74
random bits) and clients treat them as opaque.

Revision ID: 0026_time_ordered_event_ids
Revises: 0025_audit_seals
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

revision: str = "0026_time_ordered_event_ids"
down_revision: str | Sequence[str] | None = "0025_audit_seals"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

UUID7 = """
    CREATE FUNCTION vaultcraft_uuid7() RETURNS uuid LANGUAGE sql VOLATILE PARALLEL SAFE AS $$
        SELECT encode(
            set_bit(set_bit(
                overlay(uuid_send(gen_random_uuid())
                        PLACING substring(int8send(
                            floor(extract(epoch FROM clock_timestamp()) * 1000)::bigint) FROM 3)
                        FROM 1 FOR 6),
                52, 1), 53, 1),
            'hex')::uuid
    $$
"""
"""RFC 9562 version 7: the first 48 bits the Unix time in milliseconds, then a random
version 4 id's bits with its version nibble turned from 4 (0100) into 7 (0111)."""


def upgrade() -> None:
    op.execute(UUID7)
    op.execute("ALTER TABLE outbox ALTER COLUMN event_id SET DEFAULT vaultcraft_uuid7()")


def downgrade() -> None:
    op.execute("ALTER TABLE outbox ALTER COLUMN event_id SET DEFAULT gen_random_uuid()")
    op.execute("DROP FUNCTION vaultcraft_uuid7()")
