"""Webhook deliveries end to end: gateway, relay, a real Dramatiq worker, a real receiver.

The receiver is an HTTP server on loopback, so these tests allow private targets
(`VAULTCRAFT_ALLOW_PRIVATE_WEBHOOKS=1`) except where the refusal itself is tested. Retries
wait milliseconds here (see `events_env`); the schedule's shape is tested in
`test_signing.py`.
"""

from __future__ import annotations

import asyncio
import json
import socket
import time
from collections.abc import Callable
from typing import Any

import pytest
import redis
from aiohttp.test_utils import TestClient
from sqlalchemy import Engine, text

from tests.events.conftest import RelayThread, StartWorker
from tests.events.receiver import Receiver
from tests.support.api import API, Account, create_wallet, signup

pytestmark = pytest.mark.asyncio

FINAL = {"SUCCEEDED", "FAILED"}


async def register(client: TestClient, admin: Account, url: str) -> dict[str, Any]:
    resp = await client.post(
        f"{API}/webhooks",
        json={"url": url, "events": ["wallet.status_changed"]},
        headers=admin.headers,
    )
    assert resp.status == 201, await resp.text()
    hook: dict[str, Any] = await resp.json()
    return hook


async def wallet_event(client: TestClient, admin: Account, engine: Engine) -> str:
    """Lock a new wallet: a `wallet.status_changed` event; returns its id."""
    wallet = await create_wallet(client, admin.token)
    resp = await client.patch(
        f"{API}/wallets/{wallet['id']}", json={"status": "LOCKED"}, headers=admin.headers
    )
    assert resp.status == 200
    with engine.connect() as conn:
        return str(
            conn.scalar(
                text("SELECT event_id FROM outbox WHERE data->>'id' = :w"), {"w": wallet["id"]}
            )
        )


async def deliveries(
    client: TestClient, admin: Account, hook_id: str, event_id: str
) -> list[dict[str, Any]]:
    resp = await client.get(
        f"{API}/webhooks/{hook_id}/deliveries",
        params={"event_id": event_id},
        headers=admin.headers,
    )
    assert resp.status == 200, await resp.text()
    found: list[dict[str, Any]] = (await resp.json())["data"]
    return found


async def final_delivery(
    client: TestClient, admin: Account, hook_id: str, event_id: str, count: int = 1
) -> list[dict[str, Any]]:
    """Wait until `count` deliveries of the event to the hook have finished."""
    deadline = time.monotonic() + 45
    while True:
        found = await deliveries(client, admin, hook_id, event_id)
        if len(found) >= count and all(d["status"] in FINAL for d in found):
            return found
        assert time.monotonic() < deadline, found
        await asyncio.sleep(0.05)


def closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


async def test_a_delivery_is_signed_and_verifies_with_the_readme_helper(
    hooks_client: TestClient,
    engine: Engine,
    relay: RelayThread,
    start_webhook_worker: StartWorker,
    readme_verify: Callable[..., bool],
) -> None:
    start_webhook_worker()
    admin = await signup(hooks_client)
    with Receiver() as receiver:
        hook = await register(hooks_client, admin, receiver.url("/signed"))
        event_id = await wallet_event(hooks_client, admin, engine)

        [delivery] = await final_delivery(hooks_client, admin, hook["id"], event_id)
        [request] = receiver.received("/signed")

    assert delivery["status"] == "SUCCEEDED" and delivery["origin"] == "RELAY"
    assert [(a["attempt"], a["status_code"]) for a in delivery["attempts"]] == [(1, 200)]
    assert delivery["next_attempt_at"] is None
    headers = request.headers
    assert readme_verify(hook["secret"], headers["VaultCraft-Signature"], request.body)
    assert not readme_verify("whsec_other", headers["VaultCraft-Signature"], request.body)
    assert headers["VaultCraft-Event-Id"] == event_id
    assert headers["VaultCraft-Event-Type"] == "wallet.status_changed"
    assert headers["Content-Type"] == "application/json"
    assert headers["Host"] == f"127.0.0.1:{receiver.port}"
    event = json.loads(request.body)
    assert set(event) == {"id", "type", "created_at", "organization_id", "data"}
    assert (event["id"], event["organization_id"]) == (event_id, admin.org["id"])
    assert event["data"]["status"] == "LOCKED"


async def test_server_errors_are_retried_with_the_same_event_until_one_succeeds(
    hooks_client: TestClient, engine: Engine, relay: RelayThread, start_webhook_worker: StartWorker
) -> None:
    start_webhook_worker()
    admin = await signup(hooks_client)
    with Receiver() as receiver:
        receiver.script("/flaky", [500, 503, 500])
        hook = await register(hooks_client, admin, receiver.url("/flaky"))
        event_id = await wallet_event(hooks_client, admin, engine)

        [delivery] = await final_delivery(hooks_client, admin, hook["id"], event_id)
        requests = receiver.received("/flaky")

    assert delivery["status"] == "SUCCEEDED"
    assert [a["status_code"] for a in delivery["attempts"]] == [500, 503, 500, 200]
    assert [a["attempt"] for a in delivery["attempts"]] == [1, 2, 3, 4]
    assert delivery["attempt_count"] == 4 and delivery["last_status_code"] == 200
    assert {r.headers["VaultCraft-Event-Id"] for r in requests} == {event_id}
    assert [r.headers["VaultCraft-Attempt"] for r in requests] == ["1", "2", "3", "4"]
    assert len({r.body for r in requests}) == 1  # the very same event each time


async def test_timeouts_are_retried(
    hooks_client: TestClient, engine: Engine, relay: RelayThread, start_webhook_worker: StartWorker
) -> None:
    start_webhook_worker(VAULTCRAFT_WEBHOOK_TIMEOUT_MS="1000")
    admin = await signup(hooks_client)
    with Receiver() as receiver:
        receiver.script("/slow", [("sleep", 3.0, 200), ("sleep", 3.0, 200)])
        hook = await register(hooks_client, admin, receiver.url("/slow"))
        event_id = await wallet_event(hooks_client, admin, engine)

        [delivery] = await final_delivery(hooks_client, admin, hook["id"], event_id)
        requests = receiver.received("/slow")

    attempts = delivery["attempts"]
    assert delivery["status"] == "SUCCEEDED"
    assert [a["status_code"] for a in attempts] == [None, None, 200]
    assert all("timed out" in a["error"] for a in attempts[:2])
    assert all(950 <= a["duration_ms"] < 2900 for a in attempts[:2])
    assert {r.headers["VaultCraft-Event-Id"] for r in requests} == {event_id}


async def test_a_delivery_fails_after_its_last_attempt_and_can_be_redelivered(
    hooks_client: TestClient, engine: Engine, relay: RelayThread, start_webhook_worker: StartWorker
) -> None:
    start_webhook_worker()  # VAULTCRAFT_WEBHOOK_MAX_ATTEMPTS=8
    admin = await signup(hooks_client)
    with Receiver() as receiver:
        receiver.script("/down", [500] * 8)
        hook = await register(hooks_client, admin, receiver.url("/down"))
        dead = await register(hooks_client, admin, f"http://127.0.0.1:{closed_port()}/gone")
        event_id = await wallet_event(hooks_client, admin, engine)

        [failed] = await final_delivery(hooks_client, admin, hook["id"], event_id)
        [refused] = await final_delivery(hooks_client, admin, dead["id"], event_id)
        await asyncio.sleep(0.5)
        assert len(receiver.received("/down")) == 8  # and nothing after the last

        resp = await hooks_client.post(f"{API}/events/{event_id}/redeliver", headers=admin.headers)
        assert resp.status == 202
        created = (await resp.json())["deliveries"]
        redone = await final_delivery(hooks_client, admin, hook["id"], event_id, count=2)
        requests = receiver.received("/down")

    assert failed["status"] == "FAILED" and failed["attempt_count"] == 8
    assert [a["status_code"] for a in failed["attempts"]] == [500] * 8
    assert failed["next_attempt_at"] is None
    assert refused["status"] == "FAILED" and len(refused["attempts"]) == 8
    assert all(a["status_code"] is None and a["error"] for a in refused["attempts"])
    assert {d["webhook_id"] for d in created} == {hook["id"], dead["id"]}
    assert {d["origin"] for d in created} == {"REDELIVERY"}
    fresh = next(d for d in redone if d["origin"] == "REDELIVERY")
    assert fresh["status"] == "SUCCEEDED"
    assert [a["attempt"] for a in fresh["attempts"]] == [1]
    assert len(requests) == 9 and requests[-1].headers["VaultCraft-Event-Id"] == event_id


async def test_no_delivery_reaches_a_private_address_when_not_allowed(
    hooks_client: TestClient, engine: Engine, relay: RelayThread, start_webhook_worker: StartWorker
) -> None:
    """DNS changed since registration: `localhost` now means loopback, checked per delivery."""
    start_webhook_worker(VAULTCRAFT_ALLOW_PRIVATE_WEBHOOKS="0")
    admin = await signup(hooks_client)
    with Receiver() as receiver:
        hook = await register(hooks_client, admin, f"https://localhost:{receiver.port}/inside")
        event_id = await wallet_event(hooks_client, admin, engine)

        [delivery] = await final_delivery(hooks_client, admin, hook["id"], event_id)
        assert receiver.received() == []

    assert delivery["status"] == "FAILED" and len(delivery["attempts"]) == 8
    for attempt in delivery["attempts"]:
        assert attempt["status_code"] is None
        assert attempt["error"].startswith("webhook_url_not_allowed:")
        assert "a loopback address" in attempt["error"]


async def test_deliveries_lost_with_the_broker_are_found_again_in_postgresql(
    hooks_client: TestClient,
    engine: Engine,
    relay: RelayThread,
    start_webhook_worker: StartWorker,
    redis_url: str,
) -> None:
    admin = await signup(hooks_client)
    with Receiver() as receiver:
        hook = await register(hooks_client, admin, receiver.url("/after-flush"))
        event_id = await wallet_event(hooks_client, admin, engine)
        deadline = time.monotonic() + 10
        while not await deliveries(hooks_client, admin, hook["id"], event_id):
            assert time.monotonic() < deadline
            await asyncio.sleep(0.05)
        with redis.Redis.from_url(redis_url) as conn:  # the broker restarts empty
            dropped = [conn.delete(key) for key in conn.scan_iter("dramatiq:webhooks*")]
        assert dropped
        start_webhook_worker()

        [delivery] = await final_delivery(hooks_client, admin, hook["id"], event_id)

    assert delivery["status"] == "SUCCEEDED"
    assert len(receiver.received("/after-flush")) == 1
