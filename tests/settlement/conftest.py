"""A fresh database per test (or per module for the whole stack), checked after each test.

Settlement reads every pair of organizations in the database and the invariant checker
reads all of it, so these tests get databases of their own, cloned from a migrated
template (a file copy on the server), and every test ends with `check_invariants`.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from alembic import command
from alembic.config import Config
from sqlalchemy import Engine, create_engine
from sqlalchemy.engine import make_url

from ledger_core.persistence.invariants import check_invariants, describe
from tests.settlement.ledger import CrossLedger
from vaultcraft.settings import to_sqlalchemy_url

ROOT = Path(__file__).resolve().parents[2]


def _url(server_url: str, name: str) -> str:
    url = make_url(to_sqlalchemy_url(server_url)).set(database=name)
    return url.render_as_string(hide_password=False)


def _admin_dsn(server_url: str) -> str:
    return _url(server_url, "postgres").replace("postgresql+psycopg", "postgresql")


@pytest.fixture(scope="session")
def settle_template(service_urls: tuple[str, str]) -> Iterator[str]:
    name = f"vaultcraft_settle_tpl_{secrets.token_hex(4)}"
    with psycopg.connect(_admin_dsn(service_urls[0]), autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    config = Config(str(ROOT / "alembic.ini"))
    config.set_main_option("script_location", str(ROOT / "migrations"))
    config.set_main_option("sqlalchemy.url", _url(service_urls[0], name).replace("%", "%%"))
    command.upgrade(config, "head")
    yield name
    with psycopg.connect(_admin_dsn(service_urls[0]), autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def _clone(service_urls: tuple[str, str], template: str) -> Iterator[str]:
    name = f"vaultcraft_settle_{secrets.token_hex(4)}"
    with psycopg.connect(_admin_dsn(service_urls[0]), autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}" TEMPLATE "{template}"')
    yield _url(service_urls[0], name)
    with psycopg.connect(_admin_dsn(service_urls[0]), autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture
def fresh_url(service_urls: tuple[str, str], settle_template: str) -> Iterator[str]:
    yield from _clone(service_urls, settle_template)


@pytest.fixture(scope="module")
def module_url(service_urls: tuple[str, str], settle_template: str) -> Iterator[str]:
    yield from _clone(service_urls, settle_template)


def assert_invariants(engine: Engine) -> None:
    with engine.connect() as conn:
        violations = check_invariants(conn)
    assert violations == [], describe(violations)


@pytest.fixture
def db(fresh_url: str) -> Iterator[Engine]:
    engine = create_engine(fresh_url, pool_size=6, max_overflow=6)
    yield engine
    assert_invariants(engine)
    engine.dispose()


@pytest.fixture
def ledger(db: Engine, fresh_url: str) -> Iterator[CrossLedger]:
    with CrossLedger(db, fresh_url) as books:
        yield books
