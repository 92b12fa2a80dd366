"""Fixtures for gateway tests: the real app over real PostgreSQL and Redis.

Import them in a conftest next to your tests::

    from tests.support.fixtures import api_settings, client  # noqa: F401
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import pytest
import pytest_asyncio
import redis
from aiohttp import web
from aiohttp.test_utils import TestClient

from gateway.app import create_app
from gateway.throttle import address_key, signup_key
from runtime.settings import Settings

JWT_SECRET = "test-only-secret-" + "k" * 32
ADDRESS_PREFIX = address_key("")[: -len("unknown")]
SIGNUP_PREFIX = signup_key("")[: -len("unknown")]


@pytest.fixture
def api_settings(database_url: str, redis_url: str, tmp_path: Path) -> Settings:
    """Settings over the session's test database and Redis, with cheap bcrypt."""
    return Settings.from_env(
        {
            "DATABASE_URL": database_url,
            "REDIS_URL": redis_url,
            "VAULTCRAFT_DATA_DIR": str(tmp_path),
            "VAULTCRAFT_JWT_SECRET": JWT_SECRET,
            "VAULTCRAFT_BCRYPT_ROUNDS": "4",
            # Every test signs up from 127.0.0.1; the throttle's own tests set a real limit.
            "VAULTCRAFT_SIGNUP_LIMIT": "100000",
        }
    )


@pytest_asyncio.fixture
async def client(
    aiohttp_client: Callable[[web.Application], Awaitable[TestClient]],
    api_settings: Settings,
    redis_url: str,
) -> AsyncIterator[TestClient]:
    """An HTTP client talking to a freshly started gateway on a free local port.

    Failed logins and signups from the test client's address are forgotten after each
    test, so one test's attempts never throttle the next.
    """
    yield await aiohttp_client(create_app(api_settings))
    with redis.Redis.from_url(redis_url) as conn:
        for prefix in (ADDRESS_PREFIX, SIGNUP_PREFIX):
            for key in conn.scan_iter(f"{prefix}*"):
                conn.delete(key)
