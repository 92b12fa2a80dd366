"""Long-poll wake-ups over a real PostgreSQL LISTEN: one notification naming many watched
transfers is answered with one batched read, and every watch gets its own row."""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import AsyncIterator, Sequence
from datetime import UTC, datetime
from typing import Any
from uuid import UUID

import psycopg
from psycopg import sql

from gateway.final_waiter import Caller, FinalWaiter, RowReader, Watch
from ledger_core.channels import FINAL_CHANNEL
from ledger_core.final_notices import FinalState, state_chunks
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


def _recording_reader(status: str) -> tuple[list[list[UUID]], RowReader]:
    """A batched reader that finds every transfer in `status`, and the list of its reads."""
    reads: list[list[UUID]] = []

    async def read_rows(ids: Sequence[UUID]) -> dict[UUID, dict[str, Any]]:
        reads.append(list(ids))
        return {i: {"id": i, "status": status} for i in ids}

    return reads, read_rows


@contextlib.asynccontextmanager
async def _listening_waiter(conninfo: str, read_rows: RowReader) -> AsyncIterator[FinalWaiter]:
    """A started waiter, listening; stopped on the way out."""
    waiter = FinalWaiter(conninfo, read_rows)
    await waiter.start()
    try:
        await _listening(waiter)
        yield waiter
    finally:
        await waiter.stop()


def test_one_notification_wakes_every_watch_with_one_read(database_url: str) -> None:
    conninfo = to_psycopg_url(database_url)
    reads, read_rows = _recording_reader("COMPLETED")

    async def scenario() -> None:
        async with _listening_waiter(conninfo, read_rows) as waiter:
            watched = [uuid.uuid4() for _ in range(200)]  # as many as a posting chunk names
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

    asyncio.run(scenario())


def test_a_failed_batch_read_still_wakes_every_watch_to_read_for_itself(
    database_url: str,
) -> None:
    conninfo = to_psycopg_url(database_url)

    async def read_rows(ids: Sequence[UUID]) -> dict[UUID, dict[str, Any]]:
        raise psycopg.OperationalError("the pool is exhausted")

    async def scenario() -> None:
        async with _listening_waiter(conninfo, read_rows) as waiter:
            watched = [uuid.uuid4() for _ in range(3)]
            async with contextlib.AsyncExitStack() as stack:
                watches = [await stack.enter_async_context(waiter.watch(i)) for i in watched]
                await _notify(conninfo, watched)
                await asyncio.wait_for(
                    asyncio.gather(*(w.event.wait() for w in watches)), timeout=10
                )
                assert all(w.row is None for w in watches)

    asyncio.run(scenario())


def test_a_poll_by_the_submitter_of_an_expected_transfer_reads_only_once_it_is_notified(
    database_url: str,
) -> None:
    """The intake announced the transfer before storing it: its submitter's long poll skips
    the read that would only find it PENDING, and wakes with the notification's read."""
    conninfo = to_psycopg_url(database_url)
    reads, read_rows = _recording_reader("COMPLETED")

    async def own_read(handed: dict[str, Any] | None) -> dict[str, Any]:
        assert handed is not None, "the waiter reads for its watches"
        return handed

    async def scenario() -> None:
        async with _listening_waiter(conninfo, read_rows) as waiter:
            transfer, submitter = uuid.uuid4(), (uuid.uuid4(), uuid.uuid4())
            waiter.expect([(transfer, submitter)])
            poll = asyncio.create_task(
                waiter.wait_until(
                    transfer, 10, own_read, lambda row: row["status"] == "COMPLETED", submitter
                )
            )
            await asyncio.sleep(0.3)
            assert not poll.done()
            assert reads == []
            await _notify(conninfo, [transfer])
            row = await asyncio.wait_for(poll, timeout=10)
            assert row["id"] == transfer
            assert reads == [[transfer]]

    asyncio.run(scenario())


def test_a_poll_reads_first_once_notified_for_another_caller_or_after_the_listener_reconnects(
    database_url: str,
) -> None:
    """Only a transfer still awaiting its notification, polled by its own submitter, skips
    the first read: any other poll reads at once (and here finds the transfer final)."""
    conninfo = to_psycopg_url(database_url)

    async def read_rows(ids: Sequence[UUID]) -> dict[UUID, dict[str, Any]]:
        return {i: {"id": i, "status": "COMPLETED"} for i in ids}

    async def own_read(handed: dict[str, Any] | None) -> dict[str, Any]:
        assert handed is not None
        return handed

    async def poll(waiter: FinalWaiter, transfer: UUID, caller: tuple[UUID, UUID]) -> None:
        settled = waiter.wait_until(
            transfer, 10, own_read, lambda row: row["status"] == "COMPLETED", caller
        )
        assert (await asyncio.wait_for(settled, timeout=2))["id"] == transfer

    async def scenario() -> None:
        async with _listening_waiter(conninfo, read_rows) as waiter:
            submitter, colleague = (uuid.uuid4(), uuid.uuid4()), (uuid.uuid4(), uuid.uuid4())
            notified, others, before_loss = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
            waiter.expect([(notified, submitter), (others, submitter)])
            async with waiter.watch(notified) as heard:
                await _notify(conninfo, [notified])
                await asyncio.wait_for(heard.event.wait(), timeout=10)
            await poll(waiter, notified, submitter)
            await poll(waiter, others, colleague)

            waiter.expect([(before_loss, submitter)])
            async with waiter.watch(uuid.uuid4()) as dropped:  # woken when the listener drops
                async with await psycopg.AsyncConnection.connect(conninfo, autocommit=True) as conn:
                    await conn.execute(
                        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
                        " WHERE application_name = 'vaultcraft-gateway-waiter'"
                    )
                await asyncio.wait_for(dropped.event.wait(), timeout=10)
            await _listening(waiter)
            await poll(waiter, before_loss, submitter)

    asyncio.run(scenario())


async def _notify_states(conninfo: str, decided: Sequence[tuple[UUID, str]]) -> None:
    """What a posting batch sends: each transfer with its state (`final_notices`)."""
    async with await psycopg.AsyncConnection.connect(conninfo, autocommit=True) as conn:
        for chunk in state_chunks(decided, datetime.now(UTC)):
            await conn.execute(
                sql.SQL("SELECT pg_notify({}, %s)").format(sql.Literal(FINAL_CHANNEL)), (chunk,)
            )


def test_a_submitters_wait_answers_from_the_notified_state_without_reading(
    database_url: str,
) -> None:
    """The submitter holds the row it stored: a notification that carries the transfer's
    new state is applied to it, and nothing is read; a FAILED one is read as before."""
    conninfo = to_psycopg_url(database_url)
    reads, read_rows = _recording_reader("FAILED")

    async def own_read(handed: dict[str, Any] | None) -> dict[str, Any]:
        assert handed is not None
        return handed

    async def wait(waiter: FinalWaiter, transfer: UUID, submitter: Caller) -> dict[str, Any]:
        stored = {"id": transfer, "status": "PENDING", "posted_at": None}
        return await waiter.wait_until(
            transfer,
            10,
            own_read,
            lambda row: row["status"] != "PENDING",
            submitter,
            apply=lambda final: final.applied_to(stored),
        )

    async def scenario() -> None:
        async with _listening_waiter(conninfo, read_rows) as waiter:
            posted, held, failed = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
            submitter = (uuid.uuid4(), uuid.uuid4())
            waiter.expect([(i, submitter) for i in (posted, held, failed)])
            polls = [
                asyncio.create_task(wait(waiter, i, submitter)) for i in (posted, held, failed)
            ]
            await asyncio.sleep(0.3)
            await _notify_states(
                conninfo, [(posted, "COMPLETED"), (held, "HELD"), (failed, "FAILED")]
            )
            rows = await asyncio.wait_for(asyncio.gather(*polls), timeout=10)
            assert [row["status"] for row in rows] == ["COMPLETED", "HELD", "FAILED"]
            assert rows[0]["posted_at"] is not None and rows[1]["posted_at"] is None
            assert reads == [[failed]]

    asyncio.run(scenario())


def test_a_notified_state_is_read_for_a_watch_that_cannot_apply_it(database_url: str) -> None:
    """Another caller's long poll holds no row of its own: the transfer is read once for
    every watch of it, the submitter's included."""
    conninfo = to_psycopg_url(database_url)
    reads, read_rows = _recording_reader("COMPLETED")

    async def scenario() -> None:
        async with _listening_waiter(conninfo, read_rows) as waiter:
            transfer = uuid.uuid4()
            async with (
                waiter.watch(transfer, applies=True) as submitters,
                waiter.watch(transfer) as colleagues,
            ):
                await _notify_states(conninfo, [(transfer, "COMPLETED")])
                await asyncio.wait_for(
                    asyncio.gather(submitters.event.wait(), colleagues.event.wait()), timeout=10
                )
                assert submitters.row == colleagues.row == {"id": transfer, "status": "COMPLETED"}
                assert submitters.final is None
            assert reads == [[transfer]]

    asyncio.run(scenario())


def test_a_notified_state_outlives_a_read_that_began_before_it() -> None:
    """A read started before the transfer's commit may still find it PENDING; waking the
    watch with that row must not drop the state the notification gave."""
    final = FinalState("COMPLETED", datetime.now(UTC))
    watch = Watch(applies=True)
    watch.wake(final=final)
    watch.wake({"status": "PENDING"})
    assert (watch.final, watch.row) == (final, {"status": "PENDING"})
    watch.clear()
    assert (watch.final, watch.row, watch.event.is_set()) == (None, None, False)
