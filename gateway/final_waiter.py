"""Long polls: wake `GET /transactions/{id}?wait=N` the moment a transfer becomes final.

One LISTEN connection per gateway process receives the ids posting workers NOTIFY on
commit; waiters register an `asyncio.Event` per transaction id. A notification can be
missed while the connection is down, so every waiter is woken to re-read when it drops and
again once listening resumes; waiters also re-read every few seconds as a last resort.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import defaultdict
from collections.abc import AsyncIterator
from uuid import UUID

import psycopg
from psycopg import sql

from ledger_core.persistence.posting import FINAL_CHANNEL

log = logging.getLogger("vaultcraft.gateway.waiter")


class FinalWaiter:
    def __init__(self, conninfo: str) -> None:
        self._conninfo = conninfo
        self._waiters: dict[UUID, set[asyncio.Event]] = defaultdict(set)
        self._task: asyncio.Task[None] | None = None
        self.closing = False
        """Set when the server shuts down: every long poll answers with what it has now."""

    async def start(self) -> None:
        self._task = asyncio.create_task(self._listen(), name="final-waiter")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    def release_all(self) -> None:
        """Wake every long poll for good, so a stopping server answers them instead of
        dropping them when its shutdown timeout runs out (a poll may wait 30 s)."""
        self.closing = True
        for events in self._waiters.values():
            for event in events:
                event.set()

    @contextlib.asynccontextmanager
    async def watch(self, transaction_id: UUID) -> AsyncIterator[asyncio.Event]:
        event = asyncio.Event()
        if self.closing:
            event.set()
        self._waiters[transaction_id].add(event)
        try:
            yield event
        finally:
            waiting = self._waiters.get(transaction_id)
            if waiting is not None:
                waiting.discard(event)
                if not waiting:
                    del self._waiters[transaction_id]

    def _wake(self, payload: str) -> None:
        for raw in payload.split(","):
            try:
                transaction_id = UUID(raw)
            except ValueError:
                continue
            for event in self._waiters.get(transaction_id, ()):
                event.set()

    async def _listen(self) -> None:
        while True:
            try:
                async with await psycopg.AsyncConnection.connect(
                    self._conninfo, autocommit=True, application_name="vaultcraft-gateway-waiter"
                ) as conn:
                    await conn.execute(sql.SQL("LISTEN {}").format(sql.Identifier(FINAL_CHANNEL)))
                    self._wake_all()  # anything that became final while we were not listening
                    async for notice in conn.notifies():
                        self._wake(notice.payload)
            except psycopg.OperationalError as exc:
                log.warning("Long-poll listener lost PostgreSQL (%s); reconnecting.", exc)
                self._wake_all()
                await asyncio.sleep(1.0)

    def _wake_all(self) -> None:
        for events in self._waiters.values():
            for event in events:
                event.set()
