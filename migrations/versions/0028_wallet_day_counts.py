"""a wallet's completed transfers of its latest day are counted on its own row

Every posting batch upserted one `wallet_rollups` row per wallet it debited or credited
(per wallet and UTC day), beside the wallet's own row, which the same batch updates
anyway: about 1.9 more row versions a transfer. The day's counts and volumes now ride on
the wallet's row (`counts_day` and the four `day_` columns), written by the same update as
its balance. When a batch meets a wallet whose counts are of another day, it moves them
to `wallet_rollups` first (added to whatever that row holds), in the same statement. Every
wallet a batch writes is stamped with the day, with nothing added for one that no
completed transfer debited or credited (a clearing wallet).

A wallet's counts for a day are the sum of its `wallet_rollups` row for that day and its
own columns when `counts_day` is that day; paths other than posting (a hold's capture)
still add to `wallet_rollups` directly.

Revision ID: 0028_wallet_day_counts
Revises: 0027_outbox_read_by_position
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0028_wallet_day_counts"
down_revision: str | Sequence[str] | None = "0027_outbox_read_by_position"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

COUNTS = ("day_debit_count", "day_credit_count")
VOLUMES = ("day_debit_volume", "day_credit_volume")


def upgrade() -> None:
    op.add_column("wallets", sa.Column("counts_day", sa.Date(), nullable=True))
    for name in COUNTS:
        op.add_column(
            "wallets", sa.Column(name, sa.BigInteger(), nullable=False, server_default="0")
        )
    for name in VOLUMES:
        op.add_column(
            "wallets",
            sa.Column(name, sa.Numeric(39, 0), nullable=False, server_default="0"),
        )
    op.create_check_constraint(
        op.f("ck_wallets_day_counts"),
        "wallets",
        "day_debit_count >= 0 AND day_credit_count >= 0"
        " AND day_debit_volume >= 0 AND day_credit_volume >= 0",
    )


def downgrade() -> None:
    op.execute("""
        INSERT INTO wallet_rollups AS r
            (organization_id, day, wallet_id, currency, debit_count, debit_volume,
             credit_count, credit_volume)
        SELECT organization_id, counts_day, id, currency, day_debit_count, day_debit_volume,
               day_credit_count, day_credit_volume
        FROM wallets WHERE day_debit_count + day_credit_count > 0
        ON CONFLICT (organization_id, day, wallet_id) DO UPDATE
        SET debit_count = r.debit_count + excluded.debit_count,
            debit_volume = r.debit_volume + excluded.debit_volume,
            credit_count = r.credit_count + excluded.credit_count,
            credit_volume = r.credit_volume + excluded.credit_volume
    """)
    op.drop_constraint(op.f("ck_wallets_day_counts"), "wallets", type_="check")
    for name in (*VOLUMES, *COUNTS, "counts_day"):
        op.drop_column("wallets", name)
