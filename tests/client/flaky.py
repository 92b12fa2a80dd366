"""An httpx transport in front of the real server that injects faults for one path.

Faults are taken in order for requests whose path ends with `path`, then requests pass:
- `"drop"`: send the request to the server, then lose its answer (a connection dropped
  after the server did the work);
- `"503"`: answer `503` with `Retry-After: 2` without sending anything;
- `"503-bare"`: the same without `Retry-After`.
"""

from __future__ import annotations

import httpx


class FlakyTransport(httpx.BaseTransport):
    def __init__(self, path: str, faults: list[str]) -> None:
        self.inner = httpx.HTTPTransport()
        self.path = path
        self.faults = list(faults)
        self.requests: list[httpx.Request] = []
        self.answers: list[httpx.Response] = []
        """What the server answered to each matching request that reached it."""

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        if not request.url.path.endswith(self.path):
            return self.inner.handle_request(request)
        self.requests.append(request)
        fault = self.faults.pop(0) if self.faults else None
        if fault in {"503", "503-bare"}:
            headers = {"Retry-After": "2"} if fault == "503" else {}
            problem = {"status": 503, "code": "unavailable", "detail": "try again"}
            return httpx.Response(503, headers=headers, json=problem)
        response = self.inner.handle_request(request)
        response.read()
        self.answers.append(response)
        if fault == "drop":
            raise httpx.ReadError("the connection dropped before the answer arrived")
        return response

    def close(self) -> None:
        self.inner.close()
