"""Put money on wallets for gateway tests without running workers.

`post_transfer` stores an intent and posts it with the real posting path
(`ledger_core.persistence.transfers.posting.post_batch`), so balances, entries and events are
exactly what production writes. `pending_transfer` stores just the intent; cancel it
with `cancel_transfer` when the test is done so no PENDING transfer outlives it.
"""

from __future__ import annotations

import uuid
from typing import Any
from uuid import UUID

from sqlalchemy import Connection, Engine, func, select, update

from ledger_core.persistence.tables import transactions, wallets
from ledger_core.persistence.transfers.ledger_writes import final_statements
from ledger_core.persistence.transfers.posting import post_batch


def post_transfer(engine: Engine, source_id: str, destination_id: str, amount: int) -> UUID:
    """A transfer of `amount` minor units, submitted and then posted by the real posting path."""
    tx_id = pending_transfer(engine, source_id, destination_id, amount)
    while True:
        with engine.begin() as conn:
            result = post_batch(conn, 1000)
        if result.claimed == 0 and not result.more:  # `more`: wallets busy, again
            break
    with engine.connect() as conn:
        status = conn.scalar(select(transactions.c.status).where(transactions.c.id == tx_id))
    assert status == "COMPLETED", f"funding transfer ended {status}"
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
        return _insert_intent(conn, by_id[source_id], by_id[destination_id], amount)


def cancel_transfer(engine: Engine, transaction_id: UUID) -> None:
    """Cancel a PENDING transfer with its `transfer.cancelled` event, as the API would."""
    with engine.begin() as conn:
        rows = conn.execute(
            update(transactions)
            .where(transactions.c.id == transaction_id, transactions.c.status == "PENDING")
            .values(status="CANCELLED", cancelled_at=func.now())
            .returning(*transactions.c)
        ).all()
        for statement, params in final_statements([dict(r._mapping) for r in rows]):
            conn.execute(statement, params)


def _insert_intent(conn: Connection, source: Any, destination: Any, amount: int) -> UUID:
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
        )
    )
    return tx_id
