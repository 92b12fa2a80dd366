"""A fresh, migrated database per test: these tests corrupt the ledger on purpose.

Reconciliation reads the whole database, and the tests here write behind the ledger's
back, so each test gets its own database cloned from a migrated template (fast: a file
copy on the server) and dropped afterwards. Nothing leaks into the session database.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
import redis
from alembic import command
from alembic.config import Config
from dramatiq.brokers.redis import RedisBroker
from sqlalchemy import Engine, create_engine
from sqlalchemy.engine import make_url

from tests.reconciliation.books import Books
from vaultcraft.settings import Settings, to_sqlalchemy_url

ROOT = Path(__file__).resolve().parents[2]


def _admin(server_url: str) -> str:
    url = make_url(to_sqlalchemy_url(server_url)).set(database="postgres")
    return url.render_as_string(hide_password=False).replace("postgresql+psycopg", "postgresql")


def _named(server_url: str, name: str) -> str:
    url = make_url(to_sqlalchemy_url(server_url)).set(database=name)
    return url.render_as_string(hide_password=False)


@pytest.fixture(scope="session")
def template_db(service_urls: tuple[str, str]) -> Iterator[str]:
    name = f"vaultcraft_recon_tpl_{secrets.token_hex(4)}"
    with psycopg.connect(_admin(service_urls[0]), autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    config = Config(str(ROOT / "alembic.ini"))
    config.set_main_option("script_location", str(ROOT / "migrations"))
    config.set_main_option("sqlalchemy.url", _named(service_urls[0], name).replace("%", "%%"))
    command.upgrade(config, "head")
    yield name
    with psycopg.connect(_admin(service_urls[0]), autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture
def fresh_url(service_urls: tuple[str, str], template_db: str) -> Iterator[str]:
    """The URL of a new database holding the migrated, empty schema."""
    name = f"vaultcraft_recon_{secrets.token_hex(4)}"
    with psycopg.connect(_admin(service_urls[0]), autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}" TEMPLATE "{template_db}"')
    yield _named(service_urls[0], name)
    with psycopg.connect(_admin(service_urls[0]), autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


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
    from workers.broker import setup_broker

    broker = setup_broker(Settings(database_url=None, redis_url=redis_url, data_dir=tmp_path))
    redis.Redis.from_url(redis_url).flushdb()
    return broker
