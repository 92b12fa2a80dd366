"""API keys, users and rate limits across two real gateway processes sharing PostgreSQL
and Redis.

A key revoked, or a user deactivated, through one gateway is refused by the other at
once (NOTIFY), well before the caches' one second would have passed; the token buckets
are Redis's, so two gateways together spend one organization's burst once.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path

import httpx
import pytest

from tests.support.api import PASSWORD
from tests.support.stack import Stack
from tests.support.stack_api import signup

API = "/api/v1"
PER_S, BURST = 1, 6


@pytest.fixture(scope="module")
def gateways(
    own_database: str, redis_url: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[httpx.Client, httpx.Client]]:
    env = {"VAULTCRAFT_RATE_LIMIT_PER_S": str(PER_S), "VAULTCRAFT_RATE_LIMIT_BURST": str(BURST)}
    with ExitStack() as stack:
        clients = []
        for name in ("a", "b"):
            data_dir: Path = tmp_path_factory.mktemp(f"gateway-{name}")
            running = stack.enter_context(
                Stack(own_database, redis_url, data_dir, processes=("gateway",), extra_env=env)
            )
            clients.append(stack.enter_context(httpx.Client(base_url=running.base_url, timeout=10)))
        yield clients[0], clients[1]


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


NOTIFIED_WITHIN_S = 0.5
"""Refused this soon after the change: sooner than the caches' second, so by NOTIFY."""


def wait_for_bucket(seconds: float) -> None:
    time.sleep(seconds)  # refill the organization's bucket between steps


def seconds_until_refused(client: httpx.Client, headers: dict[str, str]) -> float:
    """Ask until the answer is 401; how long that took."""
    at = time.monotonic()
    while client.get(f"{API}/wallets", headers=headers).status_code != 401:
        assert time.monotonic() - at < 3, "still accepted after 3 s"
    return time.monotonic() - at


def test_a_key_revoked_through_one_gateway_is_refused_by_the_other(
    gateways: tuple[httpx.Client, httpx.Client],
) -> None:
    a, b = gateways
    admin = signup(a)
    created = a.post(
        f"{API}/api-keys", json={"name": "svc", "scopes": ["wallets:read"]}, headers=admin.headers
    ).json()
    assert b.get(f"{API}/wallets", headers=bearer(created["key"])).status_code == 200
    revoked = a.delete(f"{API}/api-keys/{created['id']}", headers=admin.headers)
    assert revoked.status_code == 204
    assert seconds_until_refused(b, bearer(created["key"])) < NOTIFIED_WITHIN_S
    assert a.get(f"{API}/wallets", headers=bearer(created["key"])).status_code == 401


def test_a_user_deactivated_through_one_gateway_is_refused_by_the_other(
    gateways: tuple[httpx.Client, httpx.Client],
) -> None:
    a, b = gateways
    admin = signup(a)
    email = f"member-{time.time_ns()}@example.com"
    body = {"email": email, "password": PASSWORD, "full_name": "Max", "role": "MEMBER"}
    member = a.post(f"{API}/users", json=body, headers=admin.headers).json()
    token = a.post(f"{API}/auth/login", json={"email": email, "password": PASSWORD}).json()
    headers = bearer(token["access_token"])
    assert b.get(f"{API}/wallets", headers=headers).status_code == 200
    changed = a.patch(
        f"{API}/users/{member['id']}", json={"is_active": False}, headers=admin.headers
    )
    assert changed.status_code == 200
    assert seconds_until_refused(b, headers) < NOTIFIED_WITHIN_S


def test_two_gateways_share_one_organizations_bucket(
    gateways: tuple[httpx.Client, httpx.Client],
) -> None:
    a, b = gateways
    admin = signup(a)  # signup spent one token (its SYSTEM wallet lookup)
    wait_for_bucket(BURST / PER_S)
    answers = [
        (a if i % 2 == 0 else b).get(f"{API}/wallets", headers=admin.headers) for i in range(10)
    ]
    passed = [r for r in answers if r.status_code == 200]
    refused = [r for r in answers if r.status_code == 429]
    assert BURST <= len(passed) <= BURST + 1 and len(passed) + len(refused) == 10
    remaining = [int(r.headers["RateLimit-Remaining"]) for r in passed[:BURST]]
    assert remaining == sorted(remaining, reverse=True) and remaining[-1] <= 1
    assert {r.headers["RateLimit-Limit"] for r in answers} == {str(BURST)}
    refusal = refused[0]
    assert refusal.json()["code"] == "rate_limited"
    assert int(refusal.headers["Retry-After"]) >= 1
    assert int(refusal.headers["RateLimit-Reset"]) >= 1


def test_one_organization_over_its_limit_does_not_slow_another(
    gateways: tuple[httpx.Client, httpx.Client],
) -> None:
    a, b = gateways
    busy, calm = signup(a), signup(b)
    for _ in range(BURST + 2):
        a.get(f"{API}/wallets", headers=busy.headers)
    assert a.get(f"{API}/wallets", headers=busy.headers).status_code == 429
    assert b.get(f"{API}/wallets", headers=calm.headers).status_code == 200
