"""Batch requests remembered by their Idempotency-Key

`batch_requests` holds, per organization and batch key, the fingerprint of the batch
(its items' keys and bodies, and `atomic`) and the transactions it stored in request
order: the same key with the same batch answers those transactions again, with another
batch `422 idempotency_key_reused`. Keys never expire, like the transfers' own.

Revision ID: 0018_batch_requests
Revises: 0017_outbox_without_lease
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0018_batch_requests"
down_revision: str | Sequence[str] | None = "0017_outbox_without_lease"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "batch_requests",
        sa.Column("organization_id", postgresql.UUID(as_uuid=True), nullable=False),
        sa.Column("idempotency_key", sa.String(255), nullable=False),
        sa.Column("request_hash", sa.String(64), nullable=False),
        sa.Column(
            "transaction_ids",
            postgresql.ARRAY(postgresql.UUID(as_uuid=True)),
            server_default=sa.text("'{}'"),
            nullable=False,
        ),
        sa.Column(
            "created_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False
        ),
        sa.ForeignKeyConstraint(
            ["organization_id"],
            ["organizations.id"],
            name=op.f("fk_batch_requests_organization_id_organizations"),
        ),
        sa.PrimaryKeyConstraint(
            "organization_id", "idempotency_key", name=op.f("pk_batch_requests")
        ),
    )


def downgrade() -> None:
    op.drop_table("batch_requests")
