"""What every group of API methods stands on: the session, JSON calls, pages."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from types import TracebackType
from typing import Any, Self

import httpx

from vaultcraft.client.session import Params, RetryPolicy, Session


class ClientBase:
    def __init__(
        self,
        base_url: str,
        *,
        token: str | None = None,
        timeout_s: float = 30.0,
        retry: RetryPolicy | None = None,
        transport: httpx.BaseTransport | None = None,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        """`base_url` is the server root (`http://host:8000`); `token` a bearer token or
        API key. `transport` is handed to httpx (proxies, test hooks); `sleep` is what
        waits between retries."""
        http = httpx.Client(
            base_url=base_url.rstrip("/") + "/api/v1", timeout=timeout_s, transport=transport
        )
        self._session = Session(http, retry or RetryPolicy(), sleep)
        self._session.token = token

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def close(self) -> None:
        self._session.http.close()

    @property
    def token(self) -> str | None:
        return self._session.token

    @token.setter
    def token(self, value: str | None) -> None:
        self._session.token = value

    def _call(self, method: str, path: str, **options: Any) -> Any:
        """The decoded JSON answer (None for `204`); problems raise `ApiError`."""
        response = self._session.request(method, path, **options)
        return None if response.status_code == 204 else response.json()

    def _page(
        self, path: str, limit: int | None, cursor: str | None, filters: Params | None = None
    ) -> Any:
        return self._call("GET", path, params={**(filters or {}), "limit": limit, "cursor": cursor})

    def _iter(self, path: str, filters: Params | None = None) -> Iterator[Any]:
        return self._session.pages(path, filters)
