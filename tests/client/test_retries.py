"""Retries against the real server: lost answers, 503s, and the login throttle's 429s."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest
import redis

from gateway.throttle import EMAIL_FAILURES, WINDOW_S, email_key
from tests.client.conftest import PASSWORD, unique_email
from tests.client.flaky import FlakyTransport
from tests.support.fixtures import ADDRESS_PREFIX
from tests.support.stack import Stack
from vaultcraft.client import ApiError, RetryPolicy, VaultCraftClient


@pytest.fixture(autouse=True)
def forget_failed_logins(redis_url: str) -> Iterator[None]:
    """This module's failed logins from loopback must not throttle later tests."""
    yield
    with redis.Redis.from_url(redis_url) as conn:
        for key in conn.scan_iter(f"{ADDRESS_PREFIX}*"):
            conn.delete(key)


def _flaky_client(
    stack: Stack,
    admin: VaultCraftClient,
    transport: FlakyTransport,
    sleeps: list[float],
    **retry: float,
) -> VaultCraftClient:
    return VaultCraftClient(
        stack.base_url,
        token=admin.token,
        transport=transport,
        sleep=sleeps.append,
        retry=RetryPolicy(**retry),  # type: ignore[arg-type]
    )


def test_a_transfer_whose_answer_was_lost_is_replayed_not_repeated(
    stack: Stack, admin: VaultCraftClient
) -> None:
    """The retry carries the same Idempotency-Key: the server replays, one transfer exists."""
    [system] = admin.list_wallets(type="SYSTEM")["data"]
    wallet = admin.create_wallet("PRIMARY")
    transport = FlakyTransport("/transactions/transfer", ["drop"])
    sleeps: list[float] = []

    with _flaky_client(stack, admin, transport, sleeps) as client:
        tx = client.transfer(system["id"], wallet["id"], "12.00", "INR")

    keys = [r.headers["Idempotency-Key"] for r in transport.requests]
    assert len(keys) == 2 and keys[0] == keys[1] == tx["idempotency_key"]
    first, second = transport.answers
    assert (first.status_code, second.status_code) == (202, 200)
    assert second.headers["Idempotent-Replayed"] == "true"
    assert first.json()["id"] == tx["id"]
    assert [t["id"] for t in admin.iter_transactions(wallet_id=wallet["id"])] == [tx["id"]]
    assert len(sleeps) == 1 and 0 <= sleeps[0] <= RetryPolicy().backoff_base_s


def test_a_write_without_a_key_is_not_resent_after_a_dropped_connection(
    stack: Stack, admin: VaultCraftClient
) -> None:
    """Creating a wallet has no idempotency key: a lost answer is raised, not retried."""
    transport = FlakyTransport("/wallets", ["drop"])
    sleeps: list[float] = []

    with _flaky_client(stack, admin, transport, sleeps) as client, pytest.raises(httpx.ReadError):
        client.create_wallet("BONUS", name="once")

    assert len(transport.requests) == 1 and sleeps == []
    assert [w["name"] for w in admin.iter_wallets(type="BONUS")] == ["once"]


def test_503_is_retried_after_retry_after_or_a_bounded_jittered_backoff(
    stack: Stack, admin: VaultCraftClient
) -> None:
    """The server's Retry-After is waited exactly; without one, the backoff stays in bounds."""
    transport = FlakyTransport("/auth/me", ["503", "503-bare", "503-bare"])
    sleeps: list[float] = []

    with _flaky_client(stack, admin, transport, sleeps, backoff_base_s=0.5) as client:
        me = client.me()

    assert me["id"] == admin.me()["id"] and len(transport.requests) == 4
    assert sleeps[0] == 2.0
    assert 0 <= sleeps[1] <= 1.0 and 0 <= sleeps[2] <= 2.0


def test_retries_are_bounded(stack: Stack, admin: VaultCraftClient) -> None:
    """After `max_retries` retries the last problem is raised."""
    transport = FlakyTransport("/auth/me", ["503"] * 5)
    sleeps: list[float] = []

    with _flaky_client(stack, admin, transport, sleeps, max_retries=2) as client:
        with pytest.raises(ApiError) as gave_up:
            client.me()

    assert (gave_up.value.status, gave_up.value.code) == (503, "unavailable")
    assert len(transport.requests) == 3 and sleeps == [2.0, 2.0]


def test_backoff_grows_but_never_past_its_cap() -> None:
    """Full jitter: each wait is within [0, min(cap, base * 2**retry)]."""
    policy = RetryPolicy(backoff_base_s=0.1, backoff_max_s=1.0)

    waits = [(retry, policy.backoff(retry)) for retry in range(12) for _ in range(50)]

    assert all(0 <= wait <= min(1.0, 0.1 * 2**retry) for retry, wait in waits)
    assert max(wait for retry, wait in waits if retry >= 4) > 0.8


def _lock_out(stack: Stack, email: str) -> None:
    with VaultCraftClient(stack.base_url) as guesser:
        for _ in range(EMAIL_FAILURES):
            with pytest.raises(ApiError) as wrong:
                guesser.login(email, "wrong password!")
            assert wrong.value.code == "invalid_credentials"


def test_a_throttled_login_waits_out_retry_after_then_succeeds(
    stack: Stack, redis_url: str
) -> None:
    """Real 429s from the login throttle: the client waits Retry-After, then logs in."""
    email = unique_email("throttled")
    with VaultCraftClient(stack.base_url) as owner:
        owner.signup(email, PASSWORD, "Thr Ottled", "Throttled Org")
    _lock_out(stack, email)
    waited: list[float] = []

    def sleep(seconds: float) -> None:
        """Time passes: the throttle's window ends, as it would after `seconds`."""
        waited.append(seconds)
        with redis.Redis.from_url(redis_url) as conn:
            conn.delete(email_key(email))

    policy = RetryPolicy(max_retry_after_s=WINDOW_S)
    with VaultCraftClient(stack.base_url, retry=policy, sleep=sleep) as client:
        token = client.login(email, PASSWORD)

    assert token["access_token"] and len(waited) == 1
    assert WINDOW_S - 60 <= waited[0] <= WINDOW_S


def test_a_retry_after_beyond_the_limit_is_raised_at_once(stack: Stack) -> None:
    """A Retry-After longer than `max_retry_after_s` is raised, with its value, not slept."""
    email = unique_email("locked")
    with VaultCraftClient(stack.base_url) as owner:
        owner.signup(email, PASSWORD, "Lock Ed", "Locked Org")
    _lock_out(stack, email)
    waited: list[float] = []

    with VaultCraftClient(stack.base_url, sleep=waited.append) as client:
        with pytest.raises(ApiError) as throttled:
            client.login(email, PASSWORD)

    assert (throttled.value.status, throttled.value.code) == (429, "too_many_attempts")
    assert throttled.value.retry_after is not None and throttled.value.retry_after > 60
    assert waited == []
