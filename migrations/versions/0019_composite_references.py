"""Wallet references that carry their organization; metadata indexes of tagged rows only;
room for heap-only updates of wallets

A transfer names its source wallet with its own organization and its destination wallet
with the destination organization, and a ledger entry names its wallet with the entry's
organization: each pair is now one foreign key to `wallets (id, organization_id)`. The
database then checks that every wallet belongs to the organization stored with it, and
the separate keys to `organizations` go: that an organization exists follows from its
wallet's own key. A posted transfer makes four fewer reference checks, none of them on
its organization's row, which every concurrent intake and posting transaction of a tenant
otherwise locks together. Clearing wallets are named the same way.

The GIN indexes on `metadata` keep only rows that have some: a lookup by metadata pairs
adds `metadata <> '{}'` (implied for any non-empty pattern), and the untagged rows,
almost every transfer, no longer write an index entry when stored and again when posted.

`wallets` and `wallet_rollups` leave half of each page free (fillfactor 50): every posted
transfer updates two rows of each, and an update stays heap-only (no entry in any index)
only while the row's page has room for the new version. Those tables are small; the room
matters most when many transfers hit few wallets, or a long transaction delays pruning.

Revision ID: 0019_composite_references
Revises: 0018_batch_requests
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0019_composite_references"
down_revision: str | Sequence[str] | None = "0018_batch_requests"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TAGGED = sa.text("metadata <> '{}'::jsonb")

WALLET_REFERENCES = [
    ("transactions", "source_wallet_id", "organization_id"),
    ("transactions", "destination_wallet_id", "destination_organization_id"),
    ("transactions", "source_clearing_wallet_id", "organization_id"),
    ("transactions", "destination_clearing_wallet_id", "destination_organization_id"),
    ("ledger_entries", "wallet_id", "organization_id"),
]
"""(table, wallet column, the organization column that goes with it)."""

ORGANIZATION_REFERENCES = [
    ("transactions", "organization_id"),
    ("transactions", "destination_organization_id"),
    ("ledger_entries", "organization_id"),
]

ROOMY = ["wallets", "wallet_rollups"]
"""Tables whose rows each posting updates: pages half free, so updates stay heap-only."""


def _fk(table: str, column: str, referred: str) -> str:
    return f"fk_{table}_{column}_{referred}"


def _metadata_indexes(where: sa.TextClause | None) -> None:
    for table in ("transactions", "wallets"):
        op.drop_index(f"ix_{table}_metadata", table_name=table)
        op.create_index(
            f"ix_{table}_metadata",
            table,
            ["metadata"],
            postgresql_using="gin",
            postgresql_ops={"metadata": "jsonb_path_ops"},
            postgresql_where=where,
        )


def upgrade() -> None:
    op.create_unique_constraint(
        "uq_wallets_id_organization_id", "wallets", ["id", "organization_id"]
    )
    for table, wallet, organization in WALLET_REFERENCES:
        name = _fk(table, wallet, "wallets")
        op.drop_constraint(name, table, type_="foreignkey")
        # Checked against the existing rows in one join (the migration holds its locks
        # until it commits, so NOT VALID and a separate VALIDATE would gain nothing).
        op.create_foreign_key(
            name, table, "wallets", [wallet, organization], ["id", "organization_id"]
        )
    for table, column in ORGANIZATION_REFERENCES:
        op.drop_constraint(_fk(table, column, "organizations"), table, type_="foreignkey")
    _metadata_indexes(TAGGED)
    for table in ROOMY:
        op.execute(f"ALTER TABLE {table} SET (fillfactor = 50)")


def downgrade() -> None:
    for table in ROOMY:
        op.execute(f"ALTER TABLE {table} RESET (fillfactor)")
    _metadata_indexes(None)
    for table, column in ORGANIZATION_REFERENCES:
        op.create_foreign_key(
            _fk(table, column, "organizations"), table, "organizations", [column], ["id"]
        )
    for table, wallet, _ in WALLET_REFERENCES:
        name = _fk(table, wallet, "wallets")
        op.drop_constraint(name, table, type_="foreignkey")
        op.create_foreign_key(name, table, "wallets", [wallet], ["id"])
    op.drop_constraint("uq_wallets_id_organization_id", "wallets", type_="unique")
