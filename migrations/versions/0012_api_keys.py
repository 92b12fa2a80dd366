"""API keys, and a token version that retires a user's older tokens

- `api_keys`: server-to-server credentials of an organization. Only the SHA-256 of the
  secret is stored; the key is shown once, at creation. Scopes are a JSON array, checked
  by the gateway against the scope each route declares. A revoked or expired key is kept
  (its id stays in the audit trail) and refused.
- `users.token_version`: raised by a password change; access tokens carry the version
  they were issued at, and a token of an older version is refused.

Revision ID: 0012_api_keys
Revises: 0006_isolation
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0012_api_keys"
down_revision: str | Sequence[str] | None = "0006_isolation"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column(
        "users",
        sa.Column("token_version", sa.Integer(), server_default=sa.text("0"), nullable=False),
    )
    op.create_table(
        "api_keys",
        sa.Column(
            "id",
            postgresql.UUID(as_uuid=True),
            server_default=sa.text("gen_random_uuid()"),
            nullable=False,
        ),
        sa.Column("organization_id", postgresql.UUID(as_uuid=True), nullable=False),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("scopes", postgresql.JSONB(), nullable=False),
        sa.Column("secret_hash", sa.LargeBinary(), nullable=False),
        sa.Column("created_by", postgresql.UUID(as_uuid=True), nullable=False),
        sa.Column("rate_limit_per_s", sa.Integer(), nullable=True),
        sa.Column("rate_limit_burst", sa.Integer(), nullable=True),
        sa.Column(
            "created_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False
        ),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("last_used_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("revoked_at", sa.DateTime(timezone=True), nullable=True),
        sa.CheckConstraint(
            "octet_length(secret_hash) = 32", name=op.f("ck_api_keys_secret_hash_sha256")
        ),
        sa.CheckConstraint("jsonb_typeof(scopes) = 'array'", name=op.f("ck_api_keys_scopes_array")),
        sa.ForeignKeyConstraint(
            ["organization_id"],
            ["organizations.id"],
            name=op.f("fk_api_keys_organization_id_organizations"),
        ),
        sa.ForeignKeyConstraint(
            ["created_by"], ["users.id"], name=op.f("fk_api_keys_created_by_users")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_api_keys")),
    )
    op.create_index(
        "ix_api_keys_organization_id_created_at", "api_keys", ["organization_id", "created_at"]
    )


def downgrade() -> None:
    op.drop_index("ix_api_keys_organization_id_created_at", table_name="api_keys")
    op.drop_table("api_keys")
    op.drop_column("users", "token_version")
