"""A flood of signups cannot exhaust password hashing: logins stay fast, extras are refused.

Signups are throttled per client address (`429 too_many_attempts`, `Retry-After`), new
passwords are capped at 128 characters, and bcrypt runs on bounded pools: new passwords
on one, login checks on another, so a login never queues behind a signup's hash. bcrypt
runs at a real cost here (rounds 11) so the flood has something to starve.
"""

from __future__ import annotations

import asyncio
import dataclasses
import statistics
import time
from collections import Counter
from collections.abc import Awaitable, Callable

import pytest
import redis
from aiohttp.test_utils import TestClient

from gateway.app import create_app
from gateway.throttle import signup_key
from runtime.settings import Settings
from tests.support.api import API, PASSWORD, expect_problem, signup, unique_email

pytestmark = pytest.mark.asyncio

AiohttpClient = Callable[..., Awaitable[TestClient]]
ROUNDS = 11
FLOOD = 80


def signup_body(password: str = "p" * 128) -> dict[str, str]:
    return {
        "email": unique_email("flood"),
        "password": password,
        "full_name": "Flo Od",
        "organization_name": "Flood",
    }


async def timed_login(client: TestClient, email: str) -> float:
    started = time.perf_counter()
    resp = await client.post(f"{API}/auth/login", json={"email": email, "password": PASSWORD})
    elapsed = time.perf_counter() - started
    assert resp.status == 200, await resp.text()
    return elapsed


async def login_during_flood(client: TestClient) -> tuple[float, float, Counter[int]]:
    """A login's baseline time, its time during a burst of signups, and the burst's statuses."""
    email = unique_email("steady")
    await signup(client, email=email)
    baseline = statistics.median([await timed_login(client, email) for _ in range(3)])

    async def one_signup() -> int:
        resp = await client.post(f"{API}/auth/signup", json=signup_body())
        await resp.read()
        return resp.status

    flood = [asyncio.create_task(one_signup()) for _ in range(FLOOD)]
    await asyncio.sleep(0.05)  # the burst is in the gateway before the logins arrive
    during = statistics.median([await timed_login(client, email) for _ in range(3)])
    statuses = Counter(await asyncio.gather(*flood))
    return baseline, during, statuses


def assert_login_kept_its_pace(baseline: float, during: float) -> None:
    """Compared with its own pace on this machine, however loaded: a login queued behind
    the burst's hashes takes several hashes' time, one with a thread of its own does not."""
    assert during < 6 * baseline + 0.5, (baseline, during)


@pytest.fixture
def limited(api_settings: Settings) -> Settings:
    """The test settings with the default signup limit (the shared fixture lifts it)."""
    return dataclasses.replace(api_settings, signup_limit=Settings.signup_limit)


@pytest.fixture
def costly(limited: Settings) -> Settings:
    return dataclasses.replace(limited, bcrypt_rounds=ROUNDS)


@pytest.fixture
def forget_signups(redis_url: str) -> Callable[[], None]:
    def forget() -> None:
        with redis.Redis.from_url(redis_url) as conn:
            conn.delete(signup_key("127.0.0.1"))

    return forget


async def test_a_signup_flood_from_one_address_is_throttled_and_logins_stay_fast(
    aiohttp_client: AiohttpClient, costly: Settings, forget_signups: Callable[[], None]
) -> None:
    forget_signups()
    client = await aiohttp_client(create_app(costly))
    try:
        baseline, during, statuses = await login_during_flood(client)
    finally:
        forget_signups()
    assert_login_kept_its_pace(baseline, during)
    assert set(statuses) <= {201, 429, 503}, statuses
    assert 1 <= statuses[201] <= costly.signup_limit - 1, statuses
    assert statuses[429] >= FLOOD - costly.signup_limit, statuses


async def test_without_the_throttle_the_hashing_pool_still_keeps_a_login_fast(
    aiohttp_client: AiohttpClient, costly: Settings, forget_signups: Callable[[], None]
) -> None:
    """Many addresses (here: a limit too high to bite): signups beyond what the new-password
    pool holds are refused at once with 503 and Retry-After, and the login has its own."""
    forget_signups()
    client = await aiohttp_client(create_app(dataclasses.replace(costly, signup_limit=10_000)))
    try:
        baseline, during, statuses = await login_during_flood(client)
    finally:
        forget_signups()
    assert_login_kept_its_pace(baseline, during)
    assert set(statuses) <= {201, 503}, statuses
    assert statuses[201] >= 1 and statuses[503] >= FLOOD // 2, statuses


async def test_the_throttle_answers_429_with_retry_after(
    aiohttp_client: AiohttpClient, limited: Settings, forget_signups: Callable[[], None]
) -> None:
    forget_signups()
    client = await aiohttp_client(create_app(limited))
    try:
        for _ in range(limited.signup_limit):
            assert (await client.post(f"{API}/auth/signup", json=signup_body())).status == 201
        resp = await client.post(f"{API}/auth/signup", json=signup_body())
    finally:
        forget_signups()
    await expect_problem(resp, 429, "too_many_attempts")
    assert 0 < int(resp.headers["Retry-After"]) <= 15 * 60


async def test_new_passwords_are_capped_at_128_characters(client: TestClient) -> None:
    account = await signup(client)
    for path, body, headers in (
        (f"{API}/auth/signup", signup_body("p" * 129), {}),
        (
            f"{API}/users",
            {"email": unique_email(), "password": "p" * 1024, "full_name": "X", "role": "MEMBER"},
            account.headers,
        ),
    ):
        resp = await client.post(path, json=body, headers=headers)
        problem = await expect_problem(resp, 422, "validation_error")
        assert [e["field"] for e in problem["errors"]] == ["password"]
    assert (await client.post(f"{API}/auth/signup", json=signup_body("p" * 128))).status == 201
    # A password set before the cap (up to 1024 characters) can still be tried at login.
    login = {"email": account.user["email"], "password": "p" * 1024}
    await expect_problem(
        await client.post(f"{API}/auth/login", json=login), 401, "invalid_credentials"
    )
