"""Metrics are for operators: a token or loopback, on the gateway and on every worker group.

With `VAULTCRAFT_METRICS_TOKEN` set, every scrape needs it as a bearer token (`401`
otherwise, loopback included); without it only loopback clients are answered and any
other client gets `404`. The series themselves carry nothing tenant- or user-identifying:
see `tests/ops/test_metrics_scrape.py`, which scans every series of a real stack.
"""

from __future__ import annotations

import dataclasses
import socket
import urllib.error
import urllib.request
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path

import aiohttp
import pytest
from aiohttp.test_utils import TestClient

from gateway.app import create_app
from runtime.metrics_access import Access, metrics_access
from runtime.metrics_exposition import MetricsServer, start_metrics_server
from runtime.settings import Settings

TOKEN = "metrics-" + "t" * 32
ALL_INTERFACES = "0.0.0.0"  # noqa: S104 - to be reached on a non-loopback address too
AiohttpClient = Callable[..., Awaitable[TestClient]]


def outward_address() -> str:
    """This machine's address on a non-loopback interface, or skip."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        try:
            probe.connect(("192.0.2.1", 9))  # no packet is sent: this only picks a route
        except OSError:
            pytest.skip("no non-loopback interface")
        address = str(probe.getsockname()[0])
    if address.startswith("127."):
        pytest.skip("no non-loopback interface")
    return address


def fetch(url: str, token: str | None = None) -> int:
    headers = {} if token is None else {"Authorization": f"Bearer {token}"}
    try:
        with urllib.request.urlopen(urllib.request.Request(url, headers=headers), timeout=5):  # noqa: S310
            return 200
    except urllib.error.HTTPError as exc:
        return exc.code


def test_the_access_rule() -> None:
    """Token set: exactly that bearer token, from anywhere. Unset: loopback only."""
    assert metrics_access(TOKEN, f"Bearer {TOKEN}", "203.0.113.9") is Access.SERVE
    for wrong in (None, "", TOKEN, f"Bearer {TOKEN}x", f"bearer {TOKEN[:-1]}", "Basic eDp5"):
        assert metrics_access(TOKEN, wrong, "127.0.0.1") is Access.UNAUTHORIZED, wrong
    for local in ("127.0.0.1", "127.8.9.1", "::1", "::ffff:127.0.0.1"):
        assert metrics_access("", None, local) is Access.SERVE, local
    for remote in ("203.0.113.9", "10.0.0.1", "::ffff:10.0.0.1", "fd00::2", None, "", "x"):
        assert metrics_access("", f"Bearer {TOKEN}", remote) is Access.HIDDEN, remote


@pytest.mark.asyncio
async def test_gateway_metrics_need_the_token_when_one_is_set(
    aiohttp_client: AiohttpClient, api_settings: Settings
) -> None:
    client = await aiohttp_client(
        create_app(dataclasses.replace(api_settings, metrics_token=TOKEN))
    )
    for path in ("/metrics", "/api/v1/metrics"):
        for headers in ({}, {"Authorization": "Bearer nope"}, {"Authorization": TOKEN}):
            resp = await client.get(path, headers=headers)
            assert resp.status == 401, (path, headers)
            assert resp.content_type == "application/problem+json"
            assert "vaultcraft_" not in await resp.text()
        resp = await client.get(path, headers={"Authorization": f"Bearer {TOKEN}"})
        assert resp.status == 200 and "vaultcraft_http_requests_total" in await resp.text()


@pytest.mark.asyncio
async def test_gateway_metrics_without_a_token_serve_loopback_only(
    aiohttp_client: AiohttpClient, api_settings: Settings
) -> None:
    address = outward_address()
    client = await aiohttp_client(create_app(api_settings), server_kwargs={"host": ALL_INTERFACES})
    port = client.server.port
    local = await client.get("/metrics")
    assert local.status == 200
    async with aiohttp.ClientSession() as session:
        for path in ("/metrics", "/api/v1/metrics"):
            async with session.get(f"http://{address}:{port}{path}") as resp:
                assert resp.status == 404, path
                assert "vaultcraft_" not in await resp.text()
            async with session.get(f"http://{address}:{port}/health") as resp:
                assert resp.status == 200  # the rest of the gateway is reachable from there


@pytest.fixture
def worker_server(tmp_path: Path) -> Iterator[Callable[[str], MetricsServer]]:
    servers: list[MetricsServer] = []

    def start(token: str) -> MetricsServer:
        servers.append(
            start_metrics_server(0, multiprocess_dir=tmp_path, host=ALL_INTERFACES, token=token)
        )
        return servers[-1]

    yield start
    for server in servers:
        server.close()


def test_worker_metrics_need_the_token_when_one_is_set(
    worker_server: Callable[[str], MetricsServer],
) -> None:
    url = f"http://127.0.0.1:{worker_server(TOKEN).port}/metrics"
    assert fetch(url) == 401
    assert fetch(url, "nope") == 401
    assert fetch(url, TOKEN) == 200


def test_worker_metrics_without_a_token_serve_loopback_only(
    worker_server: Callable[[str], MetricsServer],
) -> None:
    address = outward_address()
    port = worker_server("").port
    assert fetch(f"http://127.0.0.1:{port}/metrics") == 200
    assert fetch(f"http://{address}:{port}/metrics") == 404
    assert fetch(f"http://{address}:{port}/metrics", TOKEN) == 404
