"""The intake against real PostgreSQL: committing new intents wakes the posting dispatcher.

The dispatcher learns of new work only from `NOTIFY vaultcraft_pending` (or its slow
probe), so a commit that stores a new intent must send it, and a pure replay must not.
"""

from __future__ import annotations

import asyncio
import uuid

import psycopg
from sqlalchemy import Engine, NullPool
from sqlalchemy.ext.asyncio import create_async_engine

from ledger_core.channels import PENDING_CHANNEL
from ledger_core.intents import TransferIntent
from ledger_core.persistence.transfers.intake import route_all, store_intents
from runtime.settings import to_psycopg_url
from tests.settlement.ledger import CrossLedger, Org


def _store(url: str, org: Org, intent: TransferIntent) -> bool:
    """Store one intent through the gateway's intake; True if it was new."""

    async def store() -> bool:
        engine = create_async_engine(url, poolclass=NullPool)
        try:
            async with engine.begin() as conn:
                routes = await route_all(conn, org.admin, [intent])
                stored = await store_intents(conn, org.admin, [intent], routes)
        finally:
            await engine.dispose()
        return not stored[0].replayed

    return asyncio.run(store())


def _heard(listener: psycopg.Connection[tuple[object, ...]]) -> int:
    return sum(1 for _ in listener.notifies(timeout=0.5, stop_after=1))


def test_a_new_intent_wakes_the_dispatcher_and_a_replay_does_not(
    engine: Engine, database_url: str
) -> None:
    with CrossLedger(engine, database_url) as ledger:
        org = ledger.org(funded=1_000)
        intent = TransferIntent(
            idempotency_key=str(uuid.uuid4()),
            source_wallet_id=org.wallet,
            destination_wallet_id=org.system,
            amount=10,
            currency="USD",
        )
        with psycopg.connect(to_psycopg_url(database_url), autocommit=True) as listener:
            listener.execute(f"LISTEN {PENDING_CHANNEL}")
            assert _store(database_url, org, intent) is True
            assert _heard(listener) == 1
            assert _store(database_url, org, intent) is False  # the same key and request
            assert _heard(listener) == 0
        ledger.post_all()  # leave nothing PENDING for the tests that share this database
