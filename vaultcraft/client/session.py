"""One HTTP exchange with retries: backoff with jitter, `Retry-After`, idempotency keys.

What is retried, and why it is safe:

- `429` and `503` answers, for every request: the server refused the request before
  doing anything. The wait is the server's `Retry-After` when it sends one (up to
  `max_retry_after_s`; a longer one is raised at once instead of blocking), otherwise
  exponential backoff with full jitter.
- Connection errors, timeouts and `502`/`504`, only for requests that are safe to send
  twice: `GET`/`HEAD`/`PUT`/`DELETE`, any request with an `Idempotency-Key`, and batches
  (each transfer in the body carries its own key). The key
  is chosen once per call and sent unchanged on every attempt, so a transfer whose answer
  was lost is replayed by the server (`Idempotent-Replayed: true`), never made twice.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import httpx

from vaultcraft.client.errors import ApiError

SAFE_METHODS = frozenset({"GET", "HEAD", "PUT", "DELETE", "OPTIONS"})
ALWAYS_RETRIED = frozenset({429, 503})
RETRIED_IF_SAFE = frozenset({502, 504})
IDEMPOTENCY_HEADER = "Idempotency-Key"

Params = Mapping[str, str | int | bool | None]


@dataclass(frozen=True)
class RetryPolicy:
    """How many times, and how patiently, a request is tried again."""

    max_retries: int = 3
    backoff_base_s: float = 0.25
    backoff_max_s: float = 8.0
    max_retry_after_s: float = 60.0

    def backoff(self, retry: int) -> float:
        """Full jitter: uniform in [0, min(max, base * 2**retry)] (retry counts from 0)."""
        return random.uniform(0, min(self.backoff_max_s, self.backoff_base_s * 2**retry))


def retry_after_seconds(response: httpx.Response) -> float | None:
    """`Retry-After` in seconds, when it is given as a number (the form VaultCraft sends)."""
    raw = response.headers.get("Retry-After")
    try:
        return max(0.0, float(raw)) if raw is not None else None
    except ValueError:
        return None


def problem_error(response: httpx.Response) -> ApiError:
    """The `ApiError` for a 4xx/5xx answer, problem details or not."""
    try:
        problem = response.json()
    except ValueError:
        problem = None
    if not isinstance(problem, dict):
        problem = {"detail": response.text[:200]}
    return ApiError(
        response.status_code,
        str(problem.get("code") or f"http_{response.status_code}"),
        str(problem.get("detail") or problem.get("title") or response.reason_phrase),
        errors=problem.get("errors") if isinstance(problem.get("errors"), list) else None,
        request_id=response.headers.get("X-Request-ID"),
        retry_after=retry_after_seconds(response),
        problem=problem,
    )


class Session:
    """Sends requests to one VaultCraft base URL with a bearer token and the retry policy."""

    def __init__(
        self,
        http: httpx.Client,
        policy: RetryPolicy,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.http = http
        self.policy = policy
        self.sleep = sleep
        self.token: str | None = None

    def request(
        self,
        method: str,
        path: str,
        *,
        json: Any = None,
        params: Params | None = None,
        idempotency_key: str | None = None,
        replayable: bool = False,
        timeout: float | None = None,
    ) -> httpx.Response:
        """Send until a final answer; return it if 2xx, else raise its `ApiError`.

        `replayable` marks a write as safe to resend without an `Idempotency-Key` header
        (a batch, whose transfers carry their own keys in the body).
        """
        headers = {} if self.token is None else {"Authorization": f"Bearer {self.token}"}
        if idempotency_key is not None:
            headers[IDEMPOTENCY_HEADER] = idempotency_key
        replayable = replayable or method in SAFE_METHODS or idempotency_key is not None
        query = {k: _query_value(v) for k, v in (params or {}).items() if v is not None}
        for retry in range(self.policy.max_retries + 1):
            last = retry == self.policy.max_retries
            try:
                response = self.http.request(
                    method,
                    path,
                    json=json,
                    params=query,
                    headers=headers,
                    timeout=httpx.USE_CLIENT_DEFAULT if timeout is None else timeout,
                )
            except httpx.TransportError:
                if last or not replayable:
                    raise
                self.sleep(self.policy.backoff(retry))
                continue
            if response.is_success:
                return response
            error = problem_error(response)
            wait = None if last else self._wait_before_retry(error, replayable, retry)
            if wait is None:
                raise error
            self.sleep(wait)
        raise AssertionError("unreachable: the last attempt returns or raises")

    def _wait_before_retry(self, error: ApiError, replayable: bool, retry: int) -> float | None:
        """Seconds to wait before trying `error`'s request again, or None not to retry."""
        retried = error.status in ALWAYS_RETRIED or (replayable and error.status in RETRIED_IF_SAFE)
        if not retried:
            return None
        if error.retry_after is None:
            return self.policy.backoff(retry)
        if error.retry_after > self.policy.max_retry_after_s:
            return None
        return error.retry_after

    def pages(self, path: str, params: Params | None = None) -> Iterator[dict[str, Any]]:
        """Every item of a cursor-paginated list, fetching the next page as needed."""
        query: dict[str, str | int | bool | None] = dict(params or {})
        while True:
            page = self.request("GET", path, params=query).json()
            yield from page["data"]
            if not page.get("next_cursor"):
                return
            query["cursor"] = page["next_cursor"]


def _query_value(value: str | int | bool) -> str | int:
    return ("true" if value else "false") if isinstance(value, bool) else value
