"""The worker groups' exposition server: prometheus-client's WSGI app behind the access rule.

prometheus-client's own `start_http_server` answers anyone who connects; this serves the
same app, on a daemon thread, only to scrapes `runtime.metrics_access` lets through.
"""

from __future__ import annotations

import socket
from collections.abc import Callable, Iterable
from threading import Thread
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

from prometheus_client import CollectorRegistry, make_wsgi_app
from prometheus_client.exposition import ThreadingWSGIServer

from runtime.metrics_access import Access, metrics_access

StartResponse = Callable[..., Any]
WsgiApp = Callable[[dict[str, Any], StartResponse], Iterable[bytes]]

_REFUSALS = {
    Access.UNAUTHORIZED: ("401 Unauthorized", [("WWW-Authenticate", 'Bearer realm="vaultcraft"')]),
    Access.HIDDEN: ("404 Not Found", []),
}


def guarded(app: WsgiApp, token: str) -> WsgiApp:
    """`app`, answering only the scrapes the access rule serves; the rest get 401 or 404."""

    def guarded_app(environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        access = metrics_access(
            token, environ.get("HTTP_AUTHORIZATION"), environ.get("REMOTE_ADDR")
        )
        if access is Access.SERVE:
            return app(environ, start_response)
        status, headers = _REFUSALS[access]
        start_response(status, [("Content-Type", "text/plain; charset=utf-8"), *headers])
        return [status.encode()]

    return guarded_app


class _QuietHandler(WSGIRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        """Scrapes every few seconds are not worth a log line each."""


def serve_metrics(
    port: int, host: str, registry: CollectorRegistry, token: str
) -> tuple[WSGIServer, Thread]:
    """Serve `registry` on `host:port` behind the access rule, on a daemon thread."""

    class Server(ThreadingWSGIServer):
        address_family = socket.AF_INET6 if ":" in host else socket.AF_INET

    httpd = make_server(
        host, port, guarded(make_wsgi_app(registry), token), Server, handler_class=_QuietHandler
    )
    thread = Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    return httpd, thread
