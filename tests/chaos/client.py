"""An API client that behaves like a careful integrator while the system is being broken.

A request that gets no answer (connection refused or reset: the gateway was killed) or a
`503` (PostgreSQL or Redis unreachable) is sent again, unchanged and with the SAME
`Idempotency-Key`, until it is answered: a transfer whose `202` was lost is then replayed
(`200 Idempotent-Replayed`), never submitted twice. Anything else is the answer.
Every answer is tallied in `Tally`; a 5xx other than `503` is a finding.
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import httpx

RETRY_FOR_S = 120.0


@dataclass
class Tally:
    """What the clients saw, shared by every client thread."""

    lock: threading.Lock = field(default_factory=threading.Lock)
    statuses: Counter[int] = field(default_factory=Counter)
    no_answer: int = 0
    server_errors: list[str] = field(default_factory=list)
    unexpected: list[str] = field(default_factory=list)
    accepted: set[str] = field(default_factory=set)
    """Ids of transfers answered `202` (or replayed with `200`): each must end final."""

    def saw(self, status: int) -> None:
        with self.lock:
            self.statuses[status] += 1

    def lost(self) -> None:
        with self.lock:
            self.no_answer += 1

    def server_error(self, what: str) -> None:
        with self.lock:
            self.server_errors.append(what)

    def odd(self, what: str) -> None:
        with self.lock:
            self.unexpected.append(what)

    def accept(self, ids: list[str]) -> None:
        with self.lock:
            self.accepted.update(ids)


class GaveUp(Exception):
    """No answer other than "unavailable" within `RETRY_FOR_S`."""


class RetryingClient:
    def __init__(self, base_url: str, tally: Tally) -> None:
        self.http = httpx.Client(base_url=base_url, timeout=15)
        self.tally = tally

    def close(self) -> None:
        self.http.close()

    def call(
        self,
        method: str,
        path: str,
        *,
        token: str | None = None,
        json: Any = None,
        key: str | None = None,
        params: dict[str, Any] | None = None,
    ) -> httpx.Response:
        headers = {}
        if token is not None:
            headers["Authorization"] = f"Bearer {token}"
        if key is not None:
            headers["Idempotency-Key"] = key
        deadline = time.monotonic() + RETRY_FOR_S
        pause = 0.05
        while True:
            try:
                resp = self.http.request(method, path, json=json, headers=headers, params=params)
            except httpx.TransportError:
                self.tally.lost()
            else:
                self.tally.saw(resp.status_code)
                if resp.status_code >= 500 and resp.status_code != 503:
                    self.tally.server_error(f"{method} {path}: {resp.status_code} {resp.text}")
                if resp.status_code != 503:
                    return resp
            if time.monotonic() > deadline:
                raise GaveUp(f"{method} {path} unanswered for {RETRY_FOR_S} s")
            time.sleep(pause)
            pause = min(pause * 2, 1.0)
