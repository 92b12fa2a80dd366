"""A fresh database per test (or per module for the whole stack), checked after each test.

Settlement reads every pair of organizations in the database and the invariant checker
reads all of it, so these tests get databases of their own, cloned from a migrated
template (a file copy on the server), and every test ends with `check_invariants`.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from sqlalchemy import Engine, create_engine

from ledger_core.persistence.reconciliation.invariants import check_invariants, describe
from tests.settlement.ledger import CrossLedger
from tests.support.databases import clone_database, create_migrated_database, drop_database
from tests.support.ledger_checks import double_postings
from tests.support.stack import Stack


@pytest.fixture(scope="session")
def settle_template(service_urls: tuple[str, str]) -> Iterator[str]:
    url = create_migrated_database(service_urls[0], "vaultcraft_settle_tpl")
    yield url
    drop_database(url)


@pytest.fixture
def fresh_url(settle_template: str) -> Iterator[str]:
    with clone_database(settle_template, "vaultcraft_settle") as url:
        yield url


@pytest.fixture(scope="module")
def module_url(settle_template: str) -> Iterator[str]:
    with clone_database(settle_template, "vaultcraft_settle") as url:
        yield url


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


@pytest.fixture(scope="module")
def stack(
    module_url: str, redis_url: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Stack]:
    """Gateway, posting workers (all queues) and relay over this module's own database."""
    data_dir: Path = tmp_path_factory.mktemp("settle-stack")
    with Stack(module_url, redis_url, data_dir) as running:
        yield running


@pytest.fixture(scope="module")
def books(module_url: str) -> Iterator[Engine]:
    engine = create_engine(module_url, pool_size=2)
    yield engine
    engine.dispose()


@pytest.fixture
def http(stack: Stack, books: Engine) -> Iterator[httpx.Client]:
    """A client of the module's stack; after each test the books must hold every invariant
    and show no transfer or leg posted twice."""
    with httpx.Client(base_url=stack.base_url, timeout=40) as client:
        yield client
    assert_invariants(books)
    with books.connect() as conn:
        assert double_postings(conn) == []
