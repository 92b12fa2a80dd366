"""The chaos run's webhook receiver: one loopback server, one endpoint per organization.

It plays an integrator's endpoint that checks what it gets: every request's signature is
verified with `ledger_core.webhooks.verify` against the secret its organization was given
at registration, and the event must name that organization and carry the id its
`VaultCraft-Event-Id` header names. Accepted events are recorded by id; anything else is
a finding (`bad`).

The fault schedule takes it down and back: `refuse` stops listening (connections are
refused), `error` answers `500` to everything, `hang` answers nothing until well past the
sender's timeout. Only requests answered `200` count as delivered.
"""

from __future__ import annotations

import asyncio
import json
import threading
from collections import Counter, defaultdict
from collections.abc import Coroutine
from types import TracebackType
from typing import Any

from aiohttp import web

from ledger_core.webhooks import EVENT_ID_HEADER, SIGNATURE_HEADER, verify
from runtime.ports import free_port_block

OUTAGES = ("refuse", "error", "hang")


class HookReceiver:
    def __init__(self, hang_s: float) -> None:
        self.hang_s = hang_s
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._runner: web.AppRunner | None = None
        self._site: web.TCPSite | None = None
        self._lock = threading.Lock()
        self._secrets: dict[str, str] = {}
        self.mode = "up"
        self.delivered: dict[str, set[str]] = defaultdict(set)
        """Organization id -> ids of the events it accepted (answered 200)."""
        self.bad: list[str] = []
        self.answers: Counter[str] = Counter()
        self.port = 0

    def url(self, organization_id: str) -> str:
        return f"http://127.0.0.1:{self.port}/hooks/{organization_id}"

    def expect(self, organization_id: str, secret: str) -> None:
        """Accept events for the organization signed with `secret` (shown at registration)."""
        with self._lock:
            self._secrets[organization_id] = secret

    def go_down(self, how: str) -> None:
        if how not in OUTAGES:
            raise ValueError(f"unknown receiver outage {how}")
        if how == "refuse":
            self._call(self._stop_listening())
        self.mode = how

    def come_up(self) -> None:
        if self._site is None:
            self._call(self._listen())
        self.mode = "up"

    def __enter__(self) -> HookReceiver:
        self.port = free_port_block(1)  # it goes down and comes up again on this port
        self._thread.start()
        self._call(self._start())
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._runner is not None:
            self._call(self._runner.cleanup())
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=10)
        self._loop.close()

    def _call(self, coro: Coroutine[Any, Any, None]) -> None:
        asyncio.run_coroutine_threadsafe(coro, self._loop).result(timeout=30)

    async def _start(self) -> None:
        app = web.Application()
        app.router.add_post("/hooks/{org}", self._handle)
        self._runner = web.AppRunner(app, shutdown_timeout=1)
        await self._runner.setup()
        await self._listen()

    async def _listen(self) -> None:
        assert self._runner is not None
        site = web.TCPSite(self._runner, "127.0.0.1", self.port, reuse_address=True)
        await site.start()
        self._site = site

    async def _stop_listening(self) -> None:
        if self._site is not None:
            await self._site.stop()
            self._site = None

    async def _handle(self, request: web.Request) -> web.Response:
        body = await request.read()
        mode = self.mode
        self.answers[mode] += 1
        if mode == "hang":
            await asyncio.sleep(self.hang_s)
            return web.Response(status=503)
        if mode == "error":
            return web.Response(status=500)
        org = request.match_info["org"]
        problem = self._problem(org, request, body)
        with self._lock:
            if problem is not None:
                self.bad.append(f"/hooks/{org}: {problem}")
                return web.Response(status=400)
            self.delivered[org].add(request.headers[EVENT_ID_HEADER])
        return web.Response(status=200, text="ok")

    def _problem(self, org: str, request: web.Request, body: bytes) -> str | None:
        with self._lock:
            secret = self._secrets.get(org)
        if secret is None:
            return "no webhook of this organization was registered"
        if not verify(secret, request.headers.get(SIGNATURE_HEADER, ""), body):
            return f"bad signature {request.headers.get(SIGNATURE_HEADER)!r}"
        event = json.loads(body)
        if event.get("organization_id") != org:
            return f"event {event.get('id')} of organization {event.get('organization_id')}"
        if event.get("id") != request.headers.get(EVENT_ID_HEADER):
            return f"event {event.get('id')} sent as {request.headers.get(EVENT_ID_HEADER)}"
        return None
