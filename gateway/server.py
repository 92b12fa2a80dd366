"""Run the gateway until SIGTERM/SIGINT, letting requests in flight finish.

On a signal the server stops accepting connections, waits up to `SHUTDOWN_TIMEOUT_S`
for handlers still running, then closes the database pool and Redis (cleanup_ctx).
This is `aiohttp.web.run_app` with one difference: the app is served by
`GatewayRunner`, so even requests that are not valid HTTP are answered as problems.
"""

from __future__ import annotations

import asyncio
import logging
from contextlib import suppress

import uvloop
from aiohttp import web

from gateway.access_log import StructuredAccessLogger
from gateway.app import create_app
from gateway.protocol_errors import GatewayRunner
from runtime.settings import Settings
from runtime.startup_heap import settle_startup_heap

SHUTDOWN_TIMEOUT_S = 10.0

log = logging.getLogger("vaultcraft.gateway")


def serve(settings: Settings, *, reuse_port: bool = False) -> None:
    """Serve on `settings.http_host:http_port` until told to stop, on uvloop's event loop.

    `reuse_port` lets several gateway processes share one port (SO_REUSEPORT).
    """
    log.info("The gateway listens on %s:%s.", settings.http_host, settings.http_port)
    loop = uvloop.new_event_loop()
    asyncio.set_event_loop(loop)
    main = loop.create_task(_serve(settings, reuse_port))
    try:
        loop.run_until_complete(main)
    except (web.GracefulExit, KeyboardInterrupt):
        pass
    finally:
        if not main.done():
            main.cancel()  # its `finally` runs the graceful shutdown
            with suppress(asyncio.CancelledError):
                loop.run_until_complete(main)
        pending = asyncio.all_tasks(loop)
        for task in pending:
            task.cancel()
        loop.run_until_complete(asyncio.gather(*pending, return_exceptions=True))
        loop.run_until_complete(loop.shutdown_asyncgens())
        loop.close()


async def _serve(settings: Settings, reuse_port: bool) -> None:
    runner = GatewayRunner(
        create_app(settings),
        handle_signals=True,  # SIGTERM/SIGINT raise GracefulExit out of the loop
        access_log_class=StructuredAccessLogger,
        shutdown_timeout=SHUTDOWN_TIMEOUT_S,
    )
    await runner.setup()
    try:
        site = web.TCPSite(runner, settings.http_host, settings.http_port, reuse_port=reuse_port)
        await site.start()
        settle_startup_heap()
        await asyncio.Event().wait()
    finally:
        await runner.cleanup()
