"""A read of transfers by id keeps its prepared plan instead of planning every call."""

from __future__ import annotations

import asyncio
import uuid

from sqlalchemy import Engine, NullPool
from sqlalchemy.ext.asyncio import create_async_engine

from ledger_core.persistence.transfers.reads import find_transfers_unchecked
from tests.support.ledger import create_book, insert_intents

CALLS = 30


def _plans_of_the_read(url: str, ids: list[uuid.UUID]) -> tuple[int, int]:
    """Read one to three of `ids` at a time on one connection, as a gateway's waiter does,
    checking each answer; then that connection's generic and custom plans of the read."""

    async def read() -> tuple[int, int]:
        engine = create_async_engine(url, poolclass=NullPool)
        try:
            async with engine.connect() as conn:
                for call in range(CALLS):
                    wanted = ids[call % len(ids) :][: 1 + call % 3]
                    rows = await find_transfers_unchecked(conn, wanted)
                    assert set(rows) == set(wanted)
                    assert all(rows[i]["source_user_id"] is None for i in wanted)
                result = await conn.exec_driver_sql(
                    "SELECT generic_plans, custom_plans FROM pg_prepared_statements"
                    " WHERE strpos(statement, 'unnest(wanted.ids)') > 0"
                )
                generic, custom = result.one()
                return int(generic), int(custom)
        finally:
            await engine.dispose()

    return asyncio.run(read())


def test_reading_transfers_by_id_reuses_one_plan(engine: Engine, database_url: str) -> None:
    """The long-poll and final-state reads run this statement for every woken transfer
    that is not answered from its notification; planned anew each call, planning cost
    about as much as the read itself."""
    book = create_book(engine, 4)
    w = book.wallet_ids
    with engine.begin() as conn:
        ids = insert_intents(conn, book, [(w[0], w[1], 100), (w[2], w[3], 200), (w[1], w[2], 5)])

    generic, custom = _plans_of_the_read(database_url, ids)

    assert custom <= 5, (generic, custom)
    assert generic >= CALLS - 10, (generic, custom)
