from __future__ import annotations

import dataclasses
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator

import pytest
import pytest_asyncio
from aiohttp import web
from aiohttp.test_utils import TestClient
from sqlalchemy import Engine, create_engine

from gateway.app import create_app
from runtime.settings import Settings
from tests.support.databases import create_migrated_database, drop_database
from tests.support.fixtures import api_settings, client  # noqa: F401


@pytest.fixture(scope="module")
def large_url(service_urls: tuple[str, str]) -> Iterator[str]:
    """A database of its own for a module's generated 100,000-transfer ledger, so the
    session database other tests read stays small."""
    url = create_migrated_database(service_urls[0], "vaultcraft_history")
    yield url
    drop_database(url)


@pytest.fixture(scope="module")
def large_engine(large_url: str) -> Iterator[Engine]:
    eng = create_engine(large_url, pool_size=2, max_overflow=2)
    yield eng
    eng.dispose()


@pytest_asyncio.fixture
async def large_client(
    aiohttp_client: Callable[[web.Application], Awaitable[TestClient]],
    api_settings: Settings,  # noqa: F811
    large_url: str,
) -> AsyncIterator[TestClient]:
    """The gateway over the module's own database."""
    settings = dataclasses.replace(api_settings, database_url=large_url)
    yield await aiohttp_client(create_app(settings))
