"""Requests that are not valid HTTP get a problem too, without a word of what was sent.

aiohttp answers a request it cannot parse (a garbage request line, oversized or
malformed headers, a control character in a header, `Content-Length` together with
`Transfer-Encoding`) before any route or middleware runs, in `text/plain` quoting the
offending input. `GatewayRunner` serves the app with a request handler whose
`handle_error` answers RFC 9457 problem JSON instead, with a fixed detail per status,
and a neutral `Server` header like every other answer.
"""

from __future__ import annotations

from aiohttp import web
from aiohttp.web_protocol import RequestHandler
from aiohttp.web_request import BaseRequest

from gateway.responses import problem_response

SERVER_HEADER = "vaultcraft"
"""What every answer says in `Server`: not the language, framework or their versions."""

_DETAILS = {
    400: ("bad_request", "the request is not valid HTTP/1.1"),
    413: ("payload_too_large", "the request is too large"),
    431: ("request_header_fields_too_large", "the request's headers are too large"),
    504: ("gateway_timeout", "the request took too long"),
}


async def stamp_server(request: web.Request, response: web.StreamResponse) -> None:
    """`on_response_prepare` hook: the neutral `Server` header on every routed answer."""
    response.headers["Server"] = SERVER_HEADER


class ProblemRequestHandler(RequestHandler):
    """aiohttp's per-connection protocol, answering its own errors as problems."""

    def handle_error(
        self,
        request: BaseRequest,
        status: int = 500,
        exc: BaseException | None = None,
        message: str | None = None,
    ) -> web.StreamResponse:
        super().handle_error(request, status, exc, message)  # logs, and refuses mid-answer
        code, detail = _DETAILS.get(status, ("internal_error", "an unexpected error occurred"))
        response = problem_response(status, code, detail, headers={"Server": SERVER_HEADER})
        response.force_close()
        return response


class GatewayServer(web.Server):
    def __call__(self) -> RequestHandler:
        return ProblemRequestHandler(self, loop=self._loop, **self._kwargs)


class GatewayRunner(web.AppRunner):
    """An `AppRunner` whose connections use `ProblemRequestHandler`."""

    async def _make_server(self) -> web.Server:
        server = await super()._make_server()
        server.__class__ = GatewayServer  # same state, only the protocol class differs
        return server
