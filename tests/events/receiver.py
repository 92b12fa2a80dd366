"""A real HTTP webhook receiver on a free loopback port, in its own thread and event loop.

Each request is recorded with its raw body and headers. What it answers is scripted per
path: a list of steps taken in order (a status code, or `("sleep", seconds, status)`),
then 200 once the script is used up::

    with Receiver() as hooks:
        hooks.script("/flaky", [500, 500])       # two failures, then 200
        url = hooks.url("/flaky")
"""

from __future__ import annotations

import asyncio
import socket
import threading
import time
from collections import defaultdict
from dataclasses import dataclass
from types import TracebackType

from aiohttp import web

Step = int | tuple[str, float, int]


@dataclass(frozen=True)
class Received:
    path: str
    headers: dict[str, str]
    body: bytes
    at: float


class Receiver:
    def __init__(self) -> None:
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._runner: web.AppRunner | None = None
        self._lock = threading.Lock()
        self._scripts: dict[str, list[Step]] = defaultdict(list)
        self.requests: list[Received] = []
        self.port = 0

    def __enter__(self) -> Receiver:
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            self.port = probe.getsockname()[1]
        self._thread.start()
        asyncio.run_coroutine_threadsafe(self._start(), self._loop).result(timeout=10)
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._runner is not None:
            asyncio.run_coroutine_threadsafe(self._runner.cleanup(), self._loop).result(10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=10)
        self._loop.close()

    def url(self, path: str, host: str = "127.0.0.1") -> str:
        return f"http://{host}:{self.port}{path}"

    def script(self, path: str, steps: list[Step]) -> None:
        with self._lock:
            self._scripts[path] = list(steps)

    def received(self, path: str | None = None) -> list[Received]:
        with self._lock:
            return [r for r in self.requests if path is None or r.path == path]

    async def _start(self) -> None:
        app = web.Application()
        app.router.add_post("/{tail:.*}", self._handle)
        self._runner = web.AppRunner(app, shutdown_timeout=1)
        await self._runner.setup()
        await web.TCPSite(self._runner, "127.0.0.1", self.port).start()

    async def _handle(self, request: web.Request) -> web.Response:
        body = await request.read()
        with self._lock:
            self.requests.append(Received(request.path, dict(request.headers), body, time.time()))
            steps = self._scripts[request.path]
            step: Step = steps.pop(0) if steps else 200
        if isinstance(step, tuple):
            _, seconds, step = step
            await asyncio.sleep(seconds)
        return web.Response(status=step, text="ok" if step < 300 else "no")
