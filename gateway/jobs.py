"""Requests from the gateway to the workers of the `jobs` queue.

The broker client is synchronous (Dramatiq's Redis or RabbitMQ broker), so a send runs
in a thread; the broker is created once per process on first use. An unreachable broker
raises `redis.ConnectionError` or Dramatiq's `BrokerConnectionError`, which the problem
middleware answers with `503`.
"""

from __future__ import annotations

import asyncio
from uuid import UUID

from aiohttp import web

from gateway.state import SETTINGS
from ledger_core.reconciliation import Mode


async def send_reconciliation(app: web.Application, run_id: UUID, mode: Mode) -> None:
    """Ask a `jobs` worker to take the PENDING run `run_id`."""
    settings = app[SETTINGS]

    def send() -> None:
        from messaging.broker import setup_broker
        from messaging.messages import request_reconciliation

        request_reconciliation(setup_broker(settings), mode.value, str(run_id))

    await asyncio.to_thread(send)
