"""Password guessing is throttled however the email is spelled, and for unknown emails alike."""

from __future__ import annotations

import pytest
from aiohttp.test_utils import TestClient

from gateway.throttle import EMAIL_FAILURES
from tests.support.api import API, PASSWORD, expect_problem, signup, unique_email

pytestmark = pytest.mark.asyncio


async def test_case_variants_of_one_email_share_a_budget(client: TestClient) -> None:
    email = unique_email("Guess")
    await signup(client, email=email)
    spellings = [email, email.upper(), email.lower(), email.swapcase()]
    for n in range(EMAIL_FAILURES):
        resp = await client.post(
            f"{API}/auth/login", json={"email": spellings[n % 4], "password": "g" * 12}
        )
        await expect_problem(resp, 401, "invalid_credentials")
    resp = await client.post(f"{API}/auth/login", json={"email": email, "password": PASSWORD})
    await expect_problem(resp, 429, "too_many_attempts")


async def test_an_unknown_email_is_throttled_like_a_known_one(client: TestClient) -> None:
    """The answer never tells whether an account exists."""
    answers = []
    for email in (unique_email("known"), unique_email("ghost")):
        if "known" in email:
            await signup(client, email=email)
        for _ in range(EMAIL_FAILURES):
            await client.post(f"{API}/auth/login", json={"email": email, "password": "g" * 12})
        resp = await client.post(f"{API}/auth/login", json={"email": email, "password": "g" * 12})
        answers.append(await expect_problem(resp, 429, "too_many_attempts"))
    assert answers[0] == answers[1]
