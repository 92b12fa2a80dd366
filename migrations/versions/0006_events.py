"""events: relay wake-ups, one relayed delivery per endpoint and event, audit filters

- An `AFTER INSERT` statement trigger on `outbox` NOTIFYs `vaultcraft_outbox`, so the
  relay wakes at the commit of any writer, present or future, without each one
  remembering to notify.
- `webhook_deliveries.origin` tells deliveries the relay created (`RELAY`) from manual
  redeliveries (`REDELIVERY`); a partial unique index allows one `RELAY` delivery per
  (webhook, event), so an event relayed twice (a relay killed between publishing and
  marking it) still reaches each endpoint through one delivery.
- `audit_logs (organization_id, action, id)` serves the admin's `?action=` filter.
- Sealing an audit record must set all three chain columns at once (0001 only required
  the hash), so no record can be marked sealed while staying outside its chain.

Revision ID: 0004_events
Revises: 0005_risk
Create Date: 2026-11-24 12:00:00.000000
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004_events"
down_revision: str | Sequence[str] | None = "0005_risk"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

OUTBOX_NOTIFY = [
    """
    CREATE FUNCTION vaultcraft_outbox_notify() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
        PERFORM pg_notify('vaultcraft_outbox', '');
        RETURN NULL;
    END $$
    """,
    """
    CREATE TRIGGER outbox_notify AFTER INSERT ON outbox
    FOR EACH STATEMENT EXECUTE FUNCTION vaultcraft_outbox_notify()
    """,
]


SEAL_ONLY = """
    CREATE OR REPLACE FUNCTION vaultcraft_audit_seal_only() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
        IF TG_OP = 'UPDATE' AND OLD.hash IS NULL AND NEW.hash IS NOT NULL%s
           AND (to_jsonb(OLD) - 'chain_seq' - 'prev_hash' - 'hash')
             = (to_jsonb(NEW) - 'chain_seq' - 'prev_hash' - 'hash') THEN
            RETURN NEW;
        END IF;
        RAISE EXCEPTION '%% on audit_logs is refused: audit records are append-only', TG_OP
            USING ERRCODE = 'insufficient_privilege';
    END $$
"""
WHOLE_SEAL = """
           AND OLD.chain_seq IS NULL AND NEW.chain_seq IS NOT NULL
           AND OLD.prev_hash IS NULL AND NEW.prev_hash IS NOT NULL"""


def upgrade() -> None:
    op.add_column(
        "webhook_deliveries",
        sa.Column(
            "origin", sa.String(length=10), server_default=sa.text("'RELAY'"), nullable=False
        ),
    )
    op.create_check_constraint(
        op.f("ck_webhook_deliveries_origin"),
        "webhook_deliveries",
        "origin IN ('RELAY', 'REDELIVERY')",
    )
    op.create_index(
        "uq_webhook_deliveries_relayed",
        "webhook_deliveries",
        ["webhook_id", "event_id"],
        unique=True,
        postgresql_where=sa.text("origin = 'RELAY'"),
    )
    op.create_index(
        "ix_audit_logs_organization_id_action_id",
        "audit_logs",
        ["organization_id", "action", "id"],
        unique=False,
    )
    for statement in OUTBOX_NOTIFY:
        op.execute(statement)
    op.execute(SEAL_ONLY % WHOLE_SEAL)


def downgrade() -> None:
    op.execute(SEAL_ONLY % "")
    op.execute("DROP TRIGGER IF EXISTS outbox_notify ON outbox")
    op.execute("DROP FUNCTION IF EXISTS vaultcraft_outbox_notify()")
    op.drop_index("ix_audit_logs_organization_id_action_id", table_name="audit_logs")
    op.drop_index(
        "uq_webhook_deliveries_relayed",
        table_name="webhook_deliveries",
        postgresql_where=sa.text("origin = 'RELAY'"),
    )
    op.drop_constraint(op.f("ck_webhook_deliveries_origin"), "webhook_deliveries", type_="check")
    op.drop_column("webhook_deliveries", "origin")
