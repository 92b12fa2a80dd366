"""holds: reserved funds, HELD transfers and their endings, overdraft limits, multi-leg

- `wallets.held`: the sum of the wallet's open holds (HELD transfers out of it), kept by
  the posting workers beside `balance`; `wallets.overdraft_limit`: how far below zero the
  wallet may go. `no_overdraft` becomes `balance - held >= -overdraft_limit` for every
  wallet but SYSTEM and CLEARING, so neither a transfer nor a hold can spend held funds.
- `transactions.hold_amount` (the amount reserved, NULL for an ordinary transfer) and
  `hold_expires_at`; statuses gain `HELD`, `VOIDED` and `EXPIRED`. A capture stores what it
  took in `amount` (at most the hold), so the entries of a COMPLETED transfer still add up
  to its amount. `hold_key`/`hold_request_hash` remember the capture or void that ended
  the hold, so that request can be replayed.
- The final-state trigger lets a HELD transaction end once (COMPLETED, VOIDED, EXPIRED).
- A partial index finds the overdue holds the scheduler expires.
- Multi-leg transactions: kind `MULTI`, with their legs in `postings` (a JSON array of
  `{source_wallet_id, destination_wallet_id, amount, currency}`, amounts in minor units);
  the row's wallets, amount and currency are those of the first leg.

Revision ID: 0010_holds
Revises: 0012_api_keys
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB

revision: str = "0010_holds"
down_revision: str | Sequence[str] | None = "0012_api_keys"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

HELD_ENDS = """
        IF OLD.status = 'HELD' AND NEW.status IN ('COMPLETED', 'VOIDED', 'EXPIRED') THEN
            RETURN NEW;
        END IF;"""


def _final_is_final(held_ends: str) -> str:
    """The final-state trigger function; with `HELD_ENDS`, a hold may end once."""
    return f"""
    CREATE OR REPLACE FUNCTION vaultcraft_final_is_final() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
        IF TG_OP = 'DELETE' THEN
            RAISE EXCEPTION 'transactions are never deleted' USING ERRCODE = 'insufficient_privilege';
        END IF;{held_ends}
        IF OLD.status <> 'PENDING' THEN
            RAISE EXCEPTION 'transaction % is % and final', OLD.id, OLD.status
                USING ERRCODE = 'insufficient_privilege';
        END IF;
        RETURN NEW;
    END $$
"""


OLD_STATUSES = "status IN ('PENDING', 'COMPLETED', 'FAILED', 'CANCELLED')"
NEW_STATUSES = (
    "status IN ('PENDING', 'HELD', 'COMPLETED', 'FAILED', 'CANCELLED', 'VOIDED', 'EXPIRED')"
)


def upgrade() -> None:
    op.add_column(
        "wallets", sa.Column("held", sa.BigInteger(), server_default=sa.text("0"), nullable=False)
    )
    op.add_column(
        "wallets",
        sa.Column("overdraft_limit", sa.BigInteger(), server_default=sa.text("0"), nullable=False),
    )
    op.drop_constraint(op.f("ck_wallets_no_overdraft"), "wallets", type_="check")
    op.create_check_constraint(
        op.f("ck_wallets_no_overdraft"),
        "wallets",
        "type IN ('SYSTEM', 'CLEARING') OR balance - held >= -overdraft_limit",
    )
    op.create_check_constraint(op.f("ck_wallets_held_not_negative"), "wallets", "held >= 0")
    op.create_check_constraint(
        op.f("ck_wallets_overdraft_not_negative"), "wallets", "overdraft_limit >= 0"
    )
    op.add_column("transactions", sa.Column("hold_amount", sa.BigInteger(), nullable=True))
    op.add_column(
        "transactions", sa.Column("hold_expires_at", sa.DateTime(timezone=True), nullable=True)
    )
    op.add_column("transactions", sa.Column("hold_key", sa.String(255), nullable=True))
    op.add_column("transactions", sa.Column("hold_request_hash", sa.String(64), nullable=True))
    op.drop_constraint(op.f("ck_transactions_status"), "transactions", type_="check")
    op.create_check_constraint(op.f("ck_transactions_status"), "transactions", NEW_STATUSES)
    op.create_check_constraint(
        op.f("ck_transactions_hold_shape"),
        "transactions",
        "(hold_amount IS NULL) = (hold_expires_at IS NULL)"
        " AND (hold_amount IS NULL OR amount <= hold_amount)"
        " AND (status NOT IN ('HELD', 'VOIDED', 'EXPIRED') OR hold_amount IS NOT NULL)",
    )
    op.create_index(
        "ix_transactions_held_expires_at",
        "transactions",
        ["hold_expires_at"],
        postgresql_where=sa.text("status = 'HELD'"),
    )
    op.add_column("transactions", sa.Column("postings", JSONB(), nullable=True))
    op.drop_constraint(op.f("ck_transactions_kind"), "transactions", type_="check")
    op.create_check_constraint(
        op.f("ck_transactions_kind"), "transactions", "kind IN ('TRANSFER', 'CROSS_ORG', 'MULTI')"
    )
    op.create_check_constraint(
        op.f("ck_transactions_multi_postings"),
        "transactions",
        "(kind = 'MULTI') = (postings IS NOT NULL)",
    )
    op.execute(_final_is_final(HELD_ENDS))


def downgrade() -> None:
    op.execute(_final_is_final(""))
    op.drop_constraint(op.f("ck_transactions_multi_postings"), "transactions", type_="check")
    op.drop_constraint(op.f("ck_transactions_kind"), "transactions", type_="check")
    op.create_check_constraint(
        op.f("ck_transactions_kind"), "transactions", "kind IN ('TRANSFER', 'CROSS_ORG')"
    )
    op.drop_column("transactions", "postings")
    op.drop_index("ix_transactions_held_expires_at", table_name="transactions")
    op.drop_constraint(op.f("ck_transactions_hold_shape"), "transactions", type_="check")
    op.drop_constraint(op.f("ck_transactions_status"), "transactions", type_="check")
    op.create_check_constraint(op.f("ck_transactions_status"), "transactions", OLD_STATUSES)
    for column in ("hold_request_hash", "hold_key", "hold_expires_at", "hold_amount"):
        op.drop_column("transactions", column)
    for name in ("overdraft_not_negative", "held_not_negative", "no_overdraft"):
        op.drop_constraint(op.f(f"ck_wallets_{name}"), "wallets", type_="check")
    op.create_check_constraint(
        op.f("ck_wallets_no_overdraft"), "wallets", "type IN ('SYSTEM', 'CLEARING') OR balance >= 0"
    )
    op.drop_column("wallets", "overdraft_limit")
    op.drop_column("wallets", "held")
