"""Long-poll wake-ups over a real PostgreSQL LISTEN: one notification naming many watched
transfers is answered with one batched read, and every watch gets its own row."""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import Sequence
from typing import Any
from uuid import UUID

import psycopg
from psycopg import sql

from gateway.final_waiter import FinalWaiter
from ledger_core.channels import FINAL_CHANNEL
from runtime.settings import to_psycopg_url


async def _notify(conninfo: str, ids: Sequence[UUID]) -> None:
    async with await psycopg.AsyncConnection.connect(conninfo, autocommit=True) as conn:
        await conn.execute(
            sql.SQL("SELECT pg_notify({}, %s)").format(sql.Literal(FINAL_CHANNEL)),
            (",".join(map(str, ids)),),
        )


async def _listening(waiter: FinalWaiter) -> None:
    """Wait until the waiter listens and has woken its watches for the (re)connection, so a
    watch registered now is woken only by notifications."""
    await asyncio.wait_for(waiter.listening.wait(), timeout=10)


def test_one_notification_wakes_every_watch_with_one_read(database_url: str) -> None:
    conninfo = to_psycopg_url(database_url)
    reads: list[list[UUID]] = []

    async def read_rows(ids: Sequence[UUID]) -> dict[UUID, dict[str, Any]]:
        reads.append(list(ids))
        return {i: {"id": i, "status": "COMPLETED"} for i in ids}

    async def scenario() -> None:
        waiter = FinalWaiter(conninfo, read_rows)
        await waiter.start()
        try:
            await _listening(waiter)
            watched = [uuid.uuid4() for _ in range(150)]  # one NOTIFY payload holds 200
            async with contextlib.AsyncExitStack() as stack:
                watches = [await stack.enter_async_context(waiter.watch(i)) for i in watched]
                unwatched = uuid.uuid4()
                await _notify(conninfo, [*watched, unwatched])
                await asyncio.wait_for(
                    asyncio.gather(*(w.event.wait() for w in watches)), timeout=10
                )
                assert [w.row["id"] for w in watches if w.row] == watched
            assert len(reads) == 1
            assert sorted(reads[0]) == sorted(watched)  # nobody watched the other id
        finally:
            await waiter.stop()

    asyncio.run(scenario())


def test_a_failed_batch_read_still_wakes_every_watch_to_read_for_itself(
    database_url: str,
) -> None:
    conninfo = to_psycopg_url(database_url)

    async def read_rows(ids: Sequence[UUID]) -> dict[UUID, dict[str, Any]]:
        raise psycopg.OperationalError("the pool is exhausted")

    async def scenario() -> None:
        waiter = FinalWaiter(conninfo, read_rows)
        await waiter.start()
        try:
            await _listening(waiter)
            watched = [uuid.uuid4() for _ in range(3)]
            async with contextlib.AsyncExitStack() as stack:
                watches = [await stack.enter_async_context(waiter.watch(i)) for i in watched]
                await _notify(conninfo, watched)
                await asyncio.wait_for(
                    asyncio.gather(*(w.event.wait() for w in watches)), timeout=10
                )
                assert all(w.row is None for w in watches)
        finally:
            await waiter.stop()

    asyncio.run(scenario())
