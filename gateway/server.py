"""Run the gateway until SIGTERM/SIGINT, letting requests in flight finish.

On a signal the server stops accepting connections, waits up to `SHUTDOWN_TIMEOUT_S`
for handlers still running, then closes the database pool and Redis (cleanup_ctx).
"""

from __future__ import annotations

import logging

import uvloop
from aiohttp import web

from gateway.access_log import StructuredAccessLogger
from gateway.app import create_app
from runtime.settings import Settings

SHUTDOWN_TIMEOUT_S = 10.0

log = logging.getLogger("vaultcraft.gateway")


def serve(settings: Settings, *, reuse_port: bool = False) -> None:
    """Serve on `settings.http_host:http_port` until told to stop, on uvloop's event loop.

    `reuse_port` lets several gateway processes share one port (SO_REUSEPORT).
    """
    log.info("The gateway listens on %s:%s.", settings.http_host, settings.http_port)
    web.run_app(
        create_app(settings),
        loop=uvloop.new_event_loop(),
        host=settings.http_host,
        port=settings.http_port,
        shutdown_timeout=SHUTDOWN_TIMEOUT_S,
        access_log_class=StructuredAccessLogger,
        reuse_port=reuse_port,
        print=None,
        handle_signals=True,
    )
