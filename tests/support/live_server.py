"""The gateway on a real port in a background thread, for clients that are not asyncio
(schemathesis, requests, load tools, raw sockets), served as `vaultcraft gateway` serves
it (`GatewayRunner`). Use as a context manager::

    with LiveGateway(settings) as base_url:
        requests.get(base_url + "/api/v1/health")
"""

from __future__ import annotations

import asyncio
import socket
import threading
from types import TracebackType

from aiohttp import web

from gateway.app import create_app
from gateway.protocol_errors import GatewayRunner
from runtime.settings import Settings


class LiveGateway:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._runner: GatewayRunner | None = None

    def __enter__(self) -> str:
        self._thread.start()
        with socket.socket() as probe:  # a free port, chosen by the kernel
            probe.bind(("127.0.0.1", 0))
            port = probe.getsockname()[1]
        asyncio.run_coroutine_threadsafe(self._start(port), self._loop).result(timeout=30)
        return f"http://127.0.0.1:{port}"

    async def _start(self, port: int) -> None:
        self._runner = GatewayRunner(create_app(self.settings), shutdown_timeout=5)
        await self._runner.setup()
        await web.TCPSite(self._runner, "127.0.0.1", port).start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._runner is not None:
            asyncio.run_coroutine_threadsafe(self._runner.cleanup(), self._loop).result(timeout=30)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=10)
        self._loop.close()
