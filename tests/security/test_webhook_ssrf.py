"""Webhook URLs cannot reach inside: refused at registration, and again at delivery.

Without the operator's flag (`VAULTCRAFT_ALLOW_PRIVATE_WEBHOOKS`), a URL naming any
loopback, private, link-local or metadata address, in any spelling (hex, decimal, short
IPv4, IPv4-mapped IPv6, a name that resolves there), or using plain `http`, is
`422 webhook_url_not_allowed` and nothing is written. A URL whose host resolved to a
public address at registration and to loopback later (DNS rebinding) is checked again
before each attempt by the real webhook worker: no connection is made, and every attempt
record says why.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import socket
import time
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio
import redis
from aiohttp import web
from aiohttp.test_utils import TestClient
from sqlalchemy import Engine, text

from gateway.app import create_app
from runtime.settings import Settings
from tests.support.api import API, Account, create_wallet, expect_problem, signup
from tests.support.stack import Stack

pytestmark = [pytest.mark.asyncio, pytest.mark.slow]

EVENTS = ["transfer.completed", "wallet.status_changed"]
PUBLIC = "93.184.216.34"
"""A public address the registration-time resolver is made to answer with."""

REFUSED = [
    ("https://127.0.0.1/hook", "loopback"),
    ("https://127.1/hook", "loopback"),  # short IPv4
    ("https://0x7f000001/hook", "loopback"),  # hexadecimal
    ("https://2130706433/hook", "loopback"),  # decimal
    ("https://017700000001/hook", "loopback"),  # octal
    ("https://localhost:8443/hook", "loopback"),  # a name that resolves to loopback
    ("https://[::1]/hook", "loopback"),
    ("https://[::ffff:127.0.0.1]/hook", "loopback"),  # IPv4-mapped IPv6
    ("https://[::ffff:7f00:1]/hook", "loopback"),  # the same, in hex
    ("https://10.0.0.5/hook", "private"),
    ("https://172.16.0.1/hook", "private"),
    ("https://172.31.255.254/hook", "private"),
    ("https://192.168.1.1/hook", "private"),
    ("https://[fd00::1]/hook", "private"),
    ("https://[::ffff:10.0.0.5]/hook", "private"),
    ("https://169.254.1.1/hook", "link-local"),
    ("https://169.254.169.254/latest/meta-data/", "metadata"),
    ("https://[::ffff:169.254.169.254]/latest/meta-data/", "metadata"),
    ("https://0.0.0.0/hook", "unroutable"),
    (f"http://{PUBLIC}/hook", "https"),  # plain http, even to a public address
]


def rows_of(engine: Engine, org: str) -> tuple[int, int]:
    """The organization's webhooks and audit records: a refusal adds to neither."""
    with engine.connect() as conn:
        return (
            conn.execute(
                text("SELECT count(*) FROM webhooks WHERE organization_id = :o"), {"o": org}
            ).scalar_one(),
            conn.execute(
                text("SELECT count(*) FROM audit_logs WHERE organization_id = :o"), {"o": org}
            ).scalar_one(),
        )


async def register(client: TestClient, admin: Account, url: str, events: list[str]) -> Any:
    return await client.post(
        f"{API}/webhooks", json={"url": url, "events": events}, headers=admin.headers
    )


@pytest.mark.parametrize(("url", "reason"), REFUSED)
async def test_inside_targets_are_refused_at_registration(
    client: TestClient, engine: Engine, url: str, reason: str
) -> None:
    admin = await signup(client)
    before = rows_of(engine, admin.org["id"])

    problem = await expect_problem(
        await register(client, admin, url, EVENTS), 422, "webhook_url_not_allowed"
    )

    assert problem["errors"][0]["field"] == "url"
    assert reason in json.dumps(problem), problem
    assert rows_of(engine, admin.org["id"]) == before


@pytest_asyncio.fixture
async def private_client(
    aiohttp_client: Callable[[web.Application], Awaitable[TestClient]], api_settings: Settings
) -> TestClient:
    """A gateway whose operator allows private targets."""
    return await aiohttp_client(
        create_app(dataclasses.replace(api_settings, allow_private_webhooks=True))
    )


@pytest.mark.parametrize(("url", "reason"), REFUSED)
async def test_only_the_operators_flag_lets_inside_targets_in_and_never_metadata(
    private_client: TestClient, url: str, reason: str
) -> None:
    admin = await signup(private_client)

    resp = await register(private_client, admin, url, EVENTS)

    if reason in {"metadata", "unroutable"}:
        await expect_problem(resp, 422, "webhook_url_not_allowed")
    else:
        assert resp.status == 201, await resp.text()


class Listener:
    """A loopback TCP port that only counts whether anything connected to it."""

    def __init__(self) -> None:
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.port = int(self.sock.getsockname()[1])

    def connections(self) -> int:
        self.sock.setblocking(False)
        count = 0
        while True:
            try:
                conn, _ = self.sock.accept()
            except BlockingIOError:
                return count
            conn.close()
            count += 1


@pytest.fixture
def delivery_processes(
    database_url: str, redis_url: str, engine: Engine, tmp_path: Path
) -> Iterator[Stack]:
    """The relay and a webhook worker as processes, private targets NOT allowed."""
    env = {
        "VAULTCRAFT_WEBHOOK_BACKOFF_BASE_MS": "20",
        "VAULTCRAFT_WEBHOOK_BACKOFF_MAX_MS": "200",
        "VAULTCRAFT_WEBHOOK_RESCUE_AFTER_S": "2",
        "VAULTCRAFT_WEBHOOK_MAX_ATTEMPTS": "8",
        "VAULTCRAFT_ALLOW_PRIVATE_WEBHOOKS": "0",
    }
    with Stack(
        database_url, redis_url, tmp_path, processes=("relay", "webhooks"), extra_env=env
    ) as stack:
        yield stack
    with redis.Redis.from_url(redis_url) as conn:  # leave no work to another test's worker
        for key in conn.scan_iter("dramatiq:webhooks*"):
            conn.delete(key)
    with engine.begin() as conn:
        conn.execute(
            text(
                "UPDATE webhook_deliveries SET status = 'FAILED', next_attempt_at = NULL"
                " WHERE status = 'PENDING'"
            )
        )


async def test_a_name_rebound_to_loopback_after_registration_gets_no_delivery(
    client: TestClient,
    engine: Engine,
    delivery_processes: Stack,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """At registration `localhost` answers with a public address (as a rebinding DNS
    server would); when the worker resolves it for each attempt, it is loopback."""
    loop = asyncio.get_running_loop()
    real_getaddrinfo = loop.getaddrinfo

    async def rebinding(host: Any, port: Any, *args: Any, **kwargs: Any) -> Any:
        if host == "localhost":
            return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", (PUBLIC, port))]
        return await real_getaddrinfo(host, port, *args, **kwargs)

    monkeypatch.setattr(loop, "getaddrinfo", rebinding)
    listener = Listener()
    admin = await signup(client)
    resp = await register(
        client, admin, f"https://localhost:{listener.port}/rebound", ["wallet.status_changed"]
    )
    assert resp.status == 201, await resp.text()
    hook = await resp.json()
    wallet = await create_wallet(client, admin.token)
    locked = await client.patch(
        f"{API}/wallets/{wallet['id']}", json={"status": "LOCKED"}, headers=admin.headers
    )
    assert locked.status == 200

    delivery = await _final_delivery(client, admin, hook["id"])

    assert delivery["status"] == "FAILED" and delivery["attempt_count"] == 8
    assert listener.connections() == 0
    with engine.connect() as conn:
        attempts = conn.execute(
            text(
                "SELECT attempt, status_code, error FROM webhook_attempts"
                " WHERE delivery_id = :d ORDER BY attempt"
            ),
            {"d": delivery["id"]},
        ).all()
    assert [a.attempt for a in attempts] == list(range(1, 9))
    for attempt in attempts:
        assert attempt.status_code is None
        assert attempt.error.startswith("webhook_url_not_allowed:"), attempt.error
        assert "127.0.0.1, a loopback address" in attempt.error


async def _final_delivery(client: TestClient, admin: Account, hook_id: str) -> dict[str, Any]:
    deadline = time.monotonic() + 60
    while True:
        resp = await client.get(f"{API}/webhooks/{hook_id}/deliveries", headers=admin.headers)
        assert resp.status == 200, await resp.text()
        found = (await resp.json())["data"]
        if found and found[0]["status"] != "PENDING":
            assert len(found) == 1, found
            return dict(found[0])
        assert time.monotonic() < deadline, found
        await asyncio.sleep(0.1)
