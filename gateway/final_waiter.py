"""Long polls: wake `GET /transactions/{id}?wait=N` the moment a transfer becomes final.

One LISTEN connection per gateway process receives the ids posting workers NOTIFY on
commit; waiters register a `Watch` per transaction id. A posting batch finishes many
transfers at once, so the waiter reads every watched transfer of a notification with one
query and hands each watch its row: a thousand long polls woken together cost one read,
not a thousand. A new long poll's first read joins the same batches (`refresh`), so
under load the reads group themselves like the intake's commits. If a batched read
fails, its watches are woken without a row and read for themselves. A notification can
be missed while the connection is down, so every waiter is woken to re-read when it
drops and again once listening resumes; waiters also re-read every few seconds as a last
resort.

Most long polls ask for a transfer the same caller submitted through this gateway a
moment ago, which is still PENDING: their first read would only say so. The intake tells
the waiter which transfers it is about to store, and for whom (`expect`), before their
statement runs, so before any of them can become final; a final notification heard
since crosses the transfer off. A long poll by that same caller (organization and user,
so the read it skips could not have refused it) for a transfer still expected waits for
its notification without reading first. Anything else reads first, as before: another
caller, another gateway's transfer, one whose notification came already, or any poll
after the listener lost its connection (which forgets every expectation).

A posting batch's notification also carries each COMPLETED or HELD transfer's new state
(`ledger_core.final_notices`). A submit that waits (`?wait=` on a submit route) holds the
row its intake stored, so it applies that state to the row and answers without any read;
only a transfer that some other watch also waits on, or one that FAILED, is read.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import defaultdict
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar
from uuid import UUID

import psycopg
from psycopg import sql

from ledger_core.channels import FINAL_CHANNEL
from ledger_core.final_notices import FinalState, read_payload

log = logging.getLogger("vaultcraft.gateway.waiter")


RECHECK_S = 5.0
"""A safety net only: the listener wakes every waiter whenever it (re)connects."""

EXPECT_S = 10.0
"""Expected transfers are forgotten after one to two of these, notified or not: what a
transfer still PENDING that long costs is one read, what remembering costs is memory."""

Caller = tuple[UUID, UUID]
"""Who submits or polls: (organization, user)."""

T = TypeVar("T")

RowReader = Callable[[Sequence[UUID]], Awaitable[dict[UUID, dict[str, Any]]]]
"""Reads transactions by id, unchecked: each waiter checks its own reader's access."""


@dataclass(eq=False)
class Watch:
    """One long poll's interest in one transaction: set when it may have changed; `row` is
    the transaction as read after the change, when the waiter could read it for everyone;
    `final` its state as the notification gave it, for a watch that `applies` such states
    to a row of its own instead of reading."""

    applies: bool = False
    event: asyncio.Event = field(default_factory=asyncio.Event)
    row: dict[str, Any] | None = None
    final: FinalState | None = None

    def wake(self, row: dict[str, Any] | None = None, final: FinalState | None = None) -> None:
        """Wake the poll; a notified state stays until it is taken, whatever wakes it
        meanwhile (a read that began before that commit may still show it PENDING)."""
        self.row = row
        self.final = final or self.final
        self.event.set()

    def clear(self) -> None:
        self.row = None
        self.final = None
        self.event.clear()


class FinalWaiter:
    def __init__(self, conninfo: str, read_rows: RowReader) -> None:
        self._conninfo = conninfo
        self._read_rows = read_rows
        self._waiters: dict[UUID, set[Watch]] = defaultdict(set)
        self._task: asyncio.Task[None] | None = None
        self._woken: set[UUID] = set()
        self._reader: asyncio.Task[None] | None = None
        self._expected: dict[str, Caller] = {}
        self._expected_before: dict[str, Caller] = {}
        """Transfers about to be stored, or stored, whose final notification has not come,
        by id as notifications spell it: this generation's and the previous one's."""
        self._generation_ends = 0.0
        self.closing = False
        """Set when the server shuts down: every long poll answers with what it has now."""
        self.listening = asyncio.Event()
        """Set while notifications are heard (after the wake-up that follows each LISTEN)."""

    async def start(self) -> None:
        self._task = asyncio.create_task(self._listen(), name="final-waiter")

    async def stop(self) -> None:
        for task in (self._task, self._reader):
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task

    def release_all(self) -> None:
        """Wake every long poll for good, so a stopping server answers them instead of
        dropping them when its shutdown timeout runs out (a poll may wait 30 s)."""
        self.closing = True
        self._forget_expected()
        self._wake_all()

    def expect(self, transfers: Iterable[tuple[UUID, Caller]]) -> None:
        """Note transfers (id, submitter) about to be stored. Call it before the statement
        that stores them runs: a final notification heard before this call would be
        missed, and a poll would then wait for one that never comes (until `RECHECK_S`)."""
        if not self.listening.is_set() or self.closing:
            return
        now = time.monotonic()
        if now >= self._generation_ends:
            self._expected_before, self._expected = self._expected, {}
            self._generation_ends = now + EXPECT_S
        for transaction_id, caller in transfers:
            self._expected[str(transaction_id)] = caller

    def _awaits_notification(self, transaction_id: UUID, caller: Caller | None) -> bool:
        """Whether `caller` submitted this transfer here and it has not become final since."""
        if caller is None:
            return False
        key = str(transaction_id)
        return (self._expected.get(key) or self._expected_before.get(key)) == caller

    def _forget_expected(self) -> None:
        self._expected.clear()
        self._expected_before.clear()

    @contextlib.asynccontextmanager
    async def watch(self, transaction_id: UUID, applies: bool = False) -> AsyncIterator[Watch]:
        watch = Watch(applies)
        if self.closing:
            watch.wake()
        self._waiters[transaction_id].add(watch)
        try:
            yield watch
        finally:
            waiting = self._waiters.get(transaction_id)
            if waiting is not None:
                waiting.discard(watch)
                if not waiting:
                    del self._waiters[transaction_id]

    async def wait_until(
        self,
        transaction_id: UUID,
        wait_s: float,
        read: Callable[[dict[str, Any] | None], Awaitable[T]],
        settled: Callable[[T], bool],
        caller: Caller | None = None,
        apply: Callable[[FinalState], T] | None = None,
    ) -> T:
        """`read` until `settled` or `wait_s` pass, sleeping on the transaction's
        notifications in between; `read` gets the row the waiter read for every watch
        woken with it, or None when it must read for itself. With `apply`, a notification
        that carries the transaction's new state (`final_notices`) is answered with
        `apply(state)` and nothing is read: the caller holds the row as it was stored.

        The watch is registered before the first read, so a change in between still wakes
        it; without any notification it reads again every `RECHECK_S`. A transfer that
        `caller` submitted here and that is still expected is not read before its
        notification (see the module). A stopping server answers with what it has.
        """
        deadline = time.monotonic() + wait_s
        async with self.watch(transaction_id, applies=apply is not None) as watch:
            if not self._awaits_notification(transaction_id, caller):
                self.refresh(transaction_id)
            while True:
                remaining = max(0.0, deadline - time.monotonic())
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(watch.event.wait(), timeout=min(RECHECK_S, remaining))
                handed, final = watch.row, watch.final
                watch.clear()  # before reading: a wake-up during the read is kept for the next
                if final is not None and apply is not None:
                    found = apply(final)
                else:
                    found = await read(handed)
                if settled(found) or deadline <= time.monotonic() or self.closing:
                    return found

    def refresh(self, transaction_id: UUID) -> None:
        """Read a watched transfer in the next batched read and wake its watches with it."""
        self._schedule_read([transaction_id])

    def _wake(self, payload: str) -> None:
        if not (self._waiters or self._expected or self._expected_before):
            return  # nobody long-polls and nothing is expected: nothing to parse
        named = read_payload(payload)
        for raw, _ in named:
            self._expected.pop(raw, None)
            self._expected_before.pop(raw, None)
        if not self._waiters:  # the usual case under load: nobody long-polls
            return
        ids = []
        for raw, final in named:
            try:
                transaction_id = UUID(raw)
            except ValueError:
                continue
            watches = self._waiters.get(transaction_id, ())
            if final is not None and all(watch.applies for watch in watches):
                for watch in watches:
                    watch.wake(final=final)
            elif watches:
                ids.append(transaction_id)
        self._schedule_read(ids)

    def _schedule_read(self, ids: Sequence[UUID]) -> None:
        self._woken.update(ids)
        if self._woken and (self._reader is None or self._reader.done()):
            self._reader = asyncio.create_task(self._read_woken(), name="final-waiter-read")

    async def _read_woken(self) -> None:
        """Read what the notifications named, one query per round, and wake the watches;
        ids named while a round is reading wait for the next round."""
        while self._woken:
            ids, self._woken = self._woken, set()
            rows: dict[UUID, dict[str, Any]] = {}
            try:
                rows = await self._read_rows(sorted(ids))
            except Exception as exc:  # each watch then reads for itself
                log.warning("Long-poll batch read failed (%s); waiters re-read.", exc)
            for transaction_id in ids:
                for watch in self._waiters.get(transaction_id, ()):
                    watch.wake(rows.get(transaction_id))

    async def _listen(self) -> None:
        while True:
            try:
                async with await psycopg.AsyncConnection.connect(
                    self._conninfo, autocommit=True, application_name="vaultcraft-gateway-waiter"
                ) as conn:
                    await conn.execute(sql.SQL("LISTEN {}").format(sql.Identifier(FINAL_CHANNEL)))
                    self._wake_all()  # anything that became final while we were not listening
                    self.listening.set()
                    async for notice in conn.notifies():
                        self._wake(notice.payload)
            except psycopg.OperationalError as exc:
                self.listening.clear()
                self._forget_expected()
                log.warning("Long-poll listener lost PostgreSQL (%s); reconnecting.", exc)
                self._wake_all()
                await asyncio.sleep(1.0)

    def _wake_all(self) -> None:
        for watches in self._waiters.values():
            for watch in watches:
                watch.wake()
