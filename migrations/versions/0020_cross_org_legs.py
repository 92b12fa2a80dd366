"""cross-organization legs of multi-leg transactions

A leg of a multi-leg transaction may pay into another organization that accepts the payer,
following the rules of a cross-organization transfer. Its payee organization and the two
clearing wallets it posts through are stored in the leg itself (`postings` JSONB:
`destination_organization_id`, `source_clearing_wallet_id`,
`destination_clearing_wallet_id`); a leg inside the payer's organization names none.

- The row's own wallets, amount and `destination_organization_id` stay those of the first
  leg (so its wallet references hold); the payees of the other legs are found through the
  GIN index `ix_transactions_multi_postings`.
- `ix_transactions_cross_org_multi`: the multi-leg transactions with a cross-organization
  leg, which settlement nets.
- `settlement_items.leg`: what a settlement netted is a transfer (leg 0) or one leg of a
  multi-leg transaction (counted from 1); the primary key becomes (transaction, leg), so
  no leg is settled twice while the legs of one transaction into several organizations
  each land in their own pair's settlement.

Revision ID: 0020_cross_org_legs
Revises: 0019_composite_references
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0020_cross_org_legs"
down_revision: str | Sequence[str] | None = "0019_composite_references"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

CROSS_ORG_MULTI = (
    "kind = 'MULTI' AND postings @? CAST('$[*].destination_organization_id' AS jsonpath)"
)


def upgrade() -> None:
    op.create_index(
        "ix_transactions_cross_org_multi",
        "transactions",
        ["status"],
        postgresql_where=sa.text(CROSS_ORG_MULTI),
    )
    op.add_column(
        "settlement_items",
        sa.Column("leg", sa.Integer(), server_default=sa.text("0"), nullable=False),
    )
    op.create_check_constraint(op.f("ck_settlement_items_leg"), "settlement_items", "leg >= 0")
    op.drop_constraint(op.f("pk_settlement_items"), "settlement_items", type_="primary")
    op.create_primary_key(
        op.f("pk_settlement_items"), "settlement_items", ["transaction_id", "leg"]
    )


def downgrade() -> None:
    """Only while no leg has been settled: the older schema cannot record one."""
    op.execute("""
        DO $$ BEGIN
            IF EXISTS (SELECT 1 FROM settlement_items WHERE leg > 0) THEN
                RAISE EXCEPTION 'settled cross-organization legs exist; cannot downgrade';
            END IF;
        END $$
    """)
    op.drop_constraint(op.f("pk_settlement_items"), "settlement_items", type_="primary")
    op.create_primary_key(op.f("pk_settlement_items"), "settlement_items", ["transaction_id"])
    op.drop_constraint(op.f("ck_settlement_items_leg"), "settlement_items", type_="check")
    op.drop_column("settlement_items", "leg")
    op.drop_index("ix_transactions_cross_org_multi", table_name="transactions")
