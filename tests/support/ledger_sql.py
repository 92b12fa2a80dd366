"""Put money on wallets for gateway tests, with SQL that keeps the ledger's invariants.

The posting worker is not part of gateway tests, so these helpers write what a posting
writes: the transaction, balanced DEBIT/CREDIT entries with running balances, the
balance updates and the transfer event, in one database transaction. A PENDING
transfer is written as just the intent, and can be cancelled afterwards.
"""

from __future__ import annotations

import uuid
from typing import Any
from uuid import UUID

from sqlalchemy import Connection, Engine, func, select, update

from ledger_core.persistence.outbox import TRANSFER_COMPLETED, outbox_insert
from ledger_core.persistence.tables import ledger_entries, transactions, wallets


def post_transfer(engine: Engine, source_id: str, destination_id: str, amount: int) -> UUID:
    """A COMPLETED transfer of `amount` minor units, as the posting worker would write it."""
    with engine.begin() as conn:
        rows = conn.execute(
            select(wallets.c.id, wallets.c.organization_id, wallets.c.currency, wallets.c.balance)
            .where(wallets.c.id.in_([UUID(source_id), UUID(destination_id)]))
            .order_by(wallets.c.id)
            .with_for_update()
        ).all()
        by_id = {str(r.id): r for r in rows}
        source, destination = by_id[source_id], by_id[destination_id]
        tx_id = _insert_intent(conn, source, destination, amount, status="COMPLETED")
        for wallet, direction, delta in (
            (source, "DEBIT", -amount),
            (destination, "CREDIT", amount),
        ):
            conn.execute(
                update(wallets)
                .where(wallets.c.id == wallet.id)
                .values(balance=wallets.c.balance + delta)
            )
            conn.execute(
                ledger_entries.insert().values(
                    transaction_id=tx_id,
                    wallet_id=wallet.id,
                    organization_id=wallet.organization_id,
                    direction=direction,
                    amount=amount,
                    currency=wallet.currency,
                    balance_after=wallet.balance + delta,
                )
            )
        conn.execute(outbox_insert(TRANSFER_COMPLETED, source.organization_id, {"id": str(tx_id)}))
    return tx_id


def pending_transfer(engine: Engine, source_id: str, destination_id: str, amount: int) -> UUID:
    """A PENDING transfer intent, as the gateway stores it before posting."""
    with engine.begin() as conn:
        rows = conn.execute(
            select(wallets.c.id, wallets.c.organization_id, wallets.c.currency).where(
                wallets.c.id.in_([UUID(source_id), UUID(destination_id)])
            )
        ).all()
        by_id = {str(r.id): r for r in rows}
        return _insert_intent(conn, by_id[source_id], by_id[destination_id], amount, "PENDING")


def cancel_transfer(engine: Engine, transaction_id: UUID) -> None:
    with engine.begin() as conn:
        conn.execute(
            update(transactions)
            .where(transactions.c.id == transaction_id, transactions.c.status == "PENDING")
            .values(status="CANCELLED", cancelled_at=transactions.c.created_at)
        )


def _insert_intent(
    conn: Connection, source: Any, destination: Any, amount: int, status: str
) -> UUID:
    tx_id = uuid.uuid4()
    conn.execute(
        transactions.insert().values(
            id=tx_id,
            organization_id=source.organization_id,
            destination_organization_id=destination.organization_id,
            idempotency_key=f"test-{tx_id}",
            request_hash="0" * 64,
            kind="TRANSFER",
            source_wallet_id=source.id,
            destination_wallet_id=destination.id,
            amount=amount,
            currency=source.currency,
            status=status,
            posted_at=func.now() if status == "COMPLETED" else None,
        )
    )
    return tx_id
