"""audit records are never updated: their seals go to a table of their own

Until now the sealer wrote each record's place in its chain (`chain_seq`, `prev_hash`,
`hash`) into the record itself: an UPDATE of indexed columns, so a second row version with
four index entries for every record, a dead tuple for vacuum, and a trigger that had to
tell the one allowed update from a forged one. Seals now go to `audit_seals`, one
insert-only row a record, and `audit_logs` refuses every UPDATE and DELETE outright.

The sealer no longer finds waiting records through a partial index of unsealed rows. Each
record carries the id of the transaction that wrote it (`txid`, `xid8`); the sealer reads
records in `(txid, id)` order after the last one it sealed (`audit_seal_cursor`), and only
those whose writing transaction ended before its read began, so a record that commits late
can never land behind the cursor. The service role may not write `txid` itself.

A seal names its record without a foreign key: the key's check locks the referenced row,
which writes to every record again, the very write this migration removes. A seal whose
record is gone is what `verify_chain` reports as a broken link.

The upgrade holds an exclusive lock on `audit_logs` until it commits: every action that
writes an audit record, and every read of the trail, waits for it. It copies the existing
seals (about a second a million records here) and builds the `(txid, id)` index over the
new column, which is NULL for every record sealed before it, so that index starts small.
Records still waiting get `txid` 1, before every real transaction id, and are sealed first.

Revision ID: 0025_audit_seals
Revises: 0024_drop_cross_org_multi_index
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

revision: str = "0025_audit_seals"
down_revision: str | Sequence[str] | None = "0024_drop_cross_org_multi_index"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

ROLE = "vaultcraft_service"

WRITTEN_BY_THE_SERVICE = (
    "organization_id",
    "actor_id",
    "action",
    "resource_type",
    "resource_id",
    "client_address",
    "user_agent",
    "request_id",
    "details",
    "created_at",
)
"""The columns of `audit_logs` the service role may give a value; `id` and `txid` always
take their defaults."""

UPGRADE = [
    "LOCK TABLE audit_logs IN SHARE ROW EXCLUSIVE MODE",
    "ALTER TABLE audit_logs ADD COLUMN txid xid8",
    "ALTER TABLE audit_logs ALTER COLUMN txid SET DEFAULT pg_current_xact_id()",
    """
    CREATE TABLE audit_seals (
        record_id bigint NOT NULL,
        organization_id uuid,
        chain_seq bigint NOT NULL,
        prev_hash varchar(64) NOT NULL,
        hash varchar(64) NOT NULL,
        CONSTRAINT pk_audit_seals PRIMARY KEY (record_id),
        CONSTRAINT uq_audit_seals_organization_id_chain_seq
            UNIQUE NULLS NOT DISTINCT (organization_id, chain_seq),
        CONSTRAINT ck_audit_seals_chain_seq_positive CHECK (chain_seq > 0)
    )
    """,
    """
    INSERT INTO audit_seals (record_id, organization_id, chain_seq, prev_hash, hash)
    SELECT id, organization_id, chain_seq, prev_hash, hash FROM audit_logs
    WHERE hash IS NOT NULL
    """,
    """
    CREATE TABLE audit_seal_cursor (
        singleton boolean NOT NULL DEFAULT true,
        txid xid8 NOT NULL,
        record_id bigint NOT NULL,
        CONSTRAINT pk_audit_seal_cursor PRIMARY KEY (singleton),
        CONSTRAINT ck_audit_seal_cursor_one_row CHECK (singleton)
    )
    """,
    "INSERT INTO audit_seal_cursor (txid, record_id) VALUES ('0', 0)",
    "DROP TRIGGER audit_logs_append_only ON audit_logs",
    "DROP TRIGGER audit_logs_never_deleted ON audit_logs",
    "UPDATE audit_logs SET txid = '1' WHERE hash IS NULL",
    "ALTER TABLE audit_logs DROP COLUMN chain_seq, DROP COLUMN prev_hash, DROP COLUMN hash",
    "DROP FUNCTION vaultcraft_audit_seal_only()",
    "CREATE INDEX ix_audit_logs_txid_id ON audit_logs (txid, id) WHERE txid IS NOT NULL",
    """
    CREATE TRIGGER audit_logs_append_only BEFORE UPDATE OR DELETE
    ON audit_logs FOR EACH STATEMENT EXECUTE FUNCTION vaultcraft_refuse_change()
    """,
    """
    CREATE TRIGGER audit_seals_append_only BEFORE UPDATE OR DELETE OR TRUNCATE
    ON audit_seals FOR EACH STATEMENT EXECUTE FUNCTION vaultcraft_refuse_change()
    """,
    f"REVOKE INSERT ON audit_logs FROM {ROLE}",
    f"GRANT INSERT ({', '.join(WRITTEN_BY_THE_SERVICE)}) ON audit_logs TO {ROLE}",
    f"REVOKE ALL ON audit_seals, audit_seal_cursor FROM {ROLE}",
    f"GRANT SELECT, INSERT ON audit_seals TO {ROLE}",
    f"GRANT SELECT, UPDATE ON audit_seal_cursor TO {ROLE}",
]

AUDIT_FIELDS = ("id", *WRITTEN_BY_THE_SERVICE)
"""The columns of `audit_logs` that 0021's seal condition keeps unchanged."""


def _seal_condition() -> str:
    """0021's condition of the one update it allowed: the seal, every other column kept."""
    old = ", ".join(f"OLD.{name}" for name in AUDIT_FIELDS)
    new = ", ".join(f"NEW.{name}" for name in AUDIT_FIELDS)
    chain = [f"OLD.{c} IS NULL AND NEW.{c} IS NOT NULL" for c in ("chain_seq", "prev_hash", "hash")]
    return " AND ".join([*chain, f"({old}) IS NOT DISTINCT FROM ({new})"])


DOWNGRADE = [
    "LOCK TABLE audit_logs IN SHARE ROW EXCLUSIVE MODE",
    "DROP TRIGGER audit_logs_append_only ON audit_logs",
    "ALTER TABLE audit_logs ADD COLUMN chain_seq bigint, ADD COLUMN prev_hash varchar(64),"
    " ADD COLUMN hash varchar(64)",
    """
    UPDATE audit_logs AS a SET chain_seq = s.chain_seq, prev_hash = s.prev_hash, hash = s.hash
    FROM audit_seals AS s WHERE s.record_id = a.id
    """,
    "DROP TABLE audit_seals",
    "DROP TABLE audit_seal_cursor",
    "ALTER TABLE audit_logs DROP COLUMN txid",
    "CREATE INDEX ix_audit_logs_unsealed ON audit_logs (id) WHERE hash IS NULL",
    "ALTER TABLE audit_logs ADD CONSTRAINT uq_audit_logs_organization_id_chain_seq"
    " UNIQUE (organization_id, chain_seq)",
    """
    CREATE FUNCTION vaultcraft_audit_seal_only() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
        IF TG_OP = 'UPDATE' AND OLD.hash IS NULL AND NEW.hash IS NOT NULL
           AND OLD.chain_seq IS NULL AND NEW.chain_seq IS NOT NULL
           AND OLD.prev_hash IS NULL AND NEW.prev_hash IS NOT NULL
           AND (to_jsonb(OLD) - 'chain_seq' - 'prev_hash' - 'hash')
             = (to_jsonb(NEW) - 'chain_seq' - 'prev_hash' - 'hash') THEN
            RETURN NEW;
        END IF;
        RAISE EXCEPTION '% on audit_logs is refused: audit records are append-only', TG_OP
            USING ERRCODE = 'insufficient_privilege';
    END $$
    """,
    f"""
    CREATE TRIGGER audit_logs_append_only BEFORE UPDATE ON audit_logs
    FOR EACH ROW WHEN (NOT ({_seal_condition()}))
    EXECUTE FUNCTION vaultcraft_audit_seal_only()
    """,
    """
    CREATE TRIGGER audit_logs_never_deleted BEFORE DELETE ON audit_logs
    FOR EACH ROW EXECUTE FUNCTION vaultcraft_audit_seal_only()
    """,
    f"GRANT UPDATE (chain_seq, prev_hash, hash) ON audit_logs TO {ROLE}",
    f"GRANT INSERT ON audit_logs TO {ROLE}",
]


def upgrade() -> None:
    for statement in UPGRADE:
        op.execute(statement)


def downgrade() -> None:
    for statement in DOWNGRADE:
        op.execute(statement)
