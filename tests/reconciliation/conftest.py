"""A fresh, migrated database per test: these tests corrupt the ledger on purpose.

Reconciliation reads the whole database, and the tests here write behind the ledger's
back, so each test gets its own database cloned from a migrated template (fast: a file
copy on the server) and dropped afterwards. Nothing leaks into the session database.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import redis
from dramatiq.brokers.redis import RedisBroker
from sqlalchemy import Engine, create_engine

from runtime.settings import Settings
from tests.reconciliation.books import Books
from tests.support.databases import clone_database, create_migrated_database, drop_database


@pytest.fixture(scope="session")
def template_db(service_urls: tuple[str, str]) -> Iterator[str]:
    url = create_migrated_database(service_urls[0], "vaultcraft_recon_tpl")
    yield url
    drop_database(url)


@pytest.fixture
def fresh_url(template_db: str) -> Iterator[str]:
    """The URL of a new database holding the migrated, empty schema."""
    with clone_database(template_db, "vaultcraft_recon") as url:
        yield url


@pytest.fixture
def db(fresh_url: str) -> Iterator[Engine]:
    eng = create_engine(fresh_url, pool_size=5, max_overflow=5)
    yield eng
    eng.dispose()


@pytest.fixture
def books(db: Engine) -> Books:
    return Books(db)


@pytest.fixture
def settings(fresh_url: str, redis_url: str, tmp_path: Path) -> Settings:
    return Settings(
        database_url=fresh_url, redis_url=redis_url, data_dir=tmp_path, pending_rescue_after_s=30
    )


@pytest.fixture
def broker(redis_url: str, tmp_path: Path) -> RedisBroker:
    """The process's Dramatiq broker, on the test Redis, with its queues emptied."""
    from messaging.broker import setup_broker

    broker = setup_broker(Settings(database_url=None, redis_url=redis_url, data_dir=tmp_path))
    redis.Redis.from_url(redis_url).flushdb()
    return broker
