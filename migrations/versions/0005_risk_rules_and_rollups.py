"""risk window index, rule checks, and analytics rollups

- `ix_ledger_entries_debit_window`: a wallet's debits by time, covering the amount, so a
  WINDOW_DEBITS rule reads a wallet's rolling-window usage with an index-only range scan
  inside the posting transaction.
- positive limits on `risk_rules`, and an index for listing an organization's rules.
- `transfer_rollups` and `wallet_rollups`: per-minute and per-day counts and volumes kept
  at posting time, so analytics never scans `transactions` or `ledger_entries`. Existing
  final transfers are folded in once here.

Revision ID: 0005_risk
Revises: 0004_posting_indexes
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0005_risk"
down_revision: str | Sequence[str] | None = "0004_posting_indexes"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

BACKFILL_TRANSFERS = """
INSERT INTO transfer_rollups (organization_id, grain, bucket_start, currency, status, failure_code,
                              shard, transfer_count, volume)
SELECT o.organization_id, g.grain,
       date_bin(make_interval(secs => g.grain),
                coalesce(t.posted_at, t.failed_at, t.cancelled_at, t.created_at),
                TIMESTAMPTZ '2000-01-01 00:00:00+00'),
       t.currency, t.status, coalesce(t.failure_code, ''), 0, count(*), sum(t.amount)
FROM transactions AS t
CROSS JOIN LATERAL (
    SELECT t.organization_id
    UNION SELECT t.destination_organization_id WHERE t.kind = 'CROSS_ORG'
) AS o(organization_id)
CROSS JOIN (VALUES (60), (3600)) AS g(grain)
WHERE t.status <> 'PENDING'
GROUP BY 1, 2, 3, 4, 5, 6
"""

BACKFILL_WALLETS = """
INSERT INTO wallet_rollups (organization_id, day, wallet_id, currency, debit_count, debit_volume,
                            credit_count, credit_volume)
SELECT w.organization_id, m.day, m.wallet_id, w.currency,
       sum(m.debits), sum(m.debit_volume), sum(m.credits), sum(m.credit_volume)
FROM (
    SELECT source_wallet_id AS wallet_id, (posted_at AT TIME ZONE 'UTC')::date AS day,
           1 AS debits, amount AS debit_volume, 0 AS credits, 0 AS credit_volume
    FROM transactions WHERE status = 'COMPLETED'
    UNION ALL
    SELECT destination_wallet_id, (posted_at AT TIME ZONE 'UTC')::date, 0, 0, 1, amount
    FROM transactions WHERE status = 'COMPLETED'
) AS m
JOIN wallets AS w ON w.id = m.wallet_id
GROUP BY w.organization_id, m.day, m.wallet_id, w.currency
"""


def upgrade() -> None:
    op.create_index(
        "ix_ledger_entries_debit_window",
        "ledger_entries",
        ["wallet_id", "created_at"],
        unique=False,
        postgresql_include=["amount"],
        postgresql_where=sa.text("direction = 'DEBIT'"),
    )
    op.create_check_constraint(
        op.f("ck_risk_rules_positive_max_amount"),
        "risk_rules",
        "max_amount IS NULL OR max_amount > 0",
    )
    op.create_check_constraint(
        op.f("ck_risk_rules_positive_max_count"), "risk_rules", "max_count IS NULL OR max_count > 0"
    )
    op.create_check_constraint(
        op.f("ck_risk_rules_positive_window"),
        "risk_rules",
        "window_seconds IS NULL OR window_seconds > 0",
    )
    op.create_index(
        "ix_risk_rules_organization_id_created_at",
        "risk_rules",
        ["organization_id", "created_at", "id"],
        unique=False,
    )
    op.create_table(
        "transfer_rollups",
        sa.Column("organization_id", postgresql.UUID(as_uuid=True), nullable=False),
        sa.Column("grain", sa.Integer(), nullable=False),
        sa.Column("bucket_start", sa.DateTime(timezone=True), nullable=False),
        sa.Column("currency", sa.String(length=3), nullable=False),
        sa.Column("status", sa.String(length=10), nullable=False),
        sa.Column("failure_code", sa.String(length=50), nullable=False),
        sa.Column("shard", sa.Integer(), nullable=False),
        sa.Column("transfer_count", sa.BigInteger(), nullable=False),
        sa.Column("volume", sa.Numeric(precision=39, scale=0), nullable=False),
        sa.ForeignKeyConstraint(
            ["organization_id"],
            ["organizations.id"],
            name=op.f("fk_transfer_rollups_organization_id_organizations"),
        ),
        sa.PrimaryKeyConstraint(
            "organization_id",
            "grain",
            "bucket_start",
            "currency",
            "status",
            "failure_code",
            "shard",
            name=op.f("pk_transfer_rollups"),
        ),
    )
    op.create_table(
        "wallet_rollups",
        sa.Column("organization_id", postgresql.UUID(as_uuid=True), nullable=False),
        sa.Column("day", sa.Date(), nullable=False),
        sa.Column("wallet_id", postgresql.UUID(as_uuid=True), nullable=False),
        sa.Column("currency", sa.String(length=3), nullable=False),
        sa.Column("debit_count", sa.BigInteger(), nullable=False),
        sa.Column("debit_volume", sa.Numeric(precision=39, scale=0), nullable=False),
        sa.Column("credit_count", sa.BigInteger(), nullable=False),
        sa.Column("credit_volume", sa.Numeric(precision=39, scale=0), nullable=False),
        sa.ForeignKeyConstraint(
            ["organization_id"],
            ["organizations.id"],
            name=op.f("fk_wallet_rollups_organization_id_organizations"),
        ),
        sa.ForeignKeyConstraint(
            ["wallet_id"], ["wallets.id"], name=op.f("fk_wallet_rollups_wallet_id_wallets")
        ),
        sa.PrimaryKeyConstraint(
            "organization_id", "day", "wallet_id", name=op.f("pk_wallet_rollups")
        ),
    )
    op.execute(BACKFILL_TRANSFERS)
    op.execute(BACKFILL_WALLETS)


def downgrade() -> None:
    op.drop_table("wallet_rollups")
    op.drop_table("transfer_rollups")
    op.drop_index("ix_risk_rules_organization_id_created_at", table_name="risk_rules")
    op.drop_constraint(op.f("ck_risk_rules_positive_window"), "risk_rules", type_="check")
    op.drop_constraint(op.f("ck_risk_rules_positive_max_count"), "risk_rules", type_="check")
    op.drop_constraint(op.f("ck_risk_rules_positive_max_amount"), "risk_rules", type_="check")
    op.drop_index(
        "ix_ledger_entries_debit_window",
        table_name="ledger_entries",
        postgresql_where=sa.text("direction = 'DEBIT'"),
    )
