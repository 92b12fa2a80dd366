"""Real PostgreSQL and Redis for every test run.

With `DATABASE_URL` / `REDIS_URL` set, tests use those servers (a fresh database is
created per run on the PostgreSQL server). Without them, the embedded servers are started
under `VAULTCRAFT_TEST_DATA_DIR` (default `.vaultcraft/test`). On pytest-xdist workers
(`make test`), see `tests/support/parallel.py`.
"""

from __future__ import annotations

import os
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis
from sqlalchemy import Engine, create_engine

from gateway.throttle import signup_key
from runtime.embedded import ensure_services, stop_services
from runtime.settings import service_url, to_sqlalchemy_url
from tests.support.databases import create_migrated_database, drop_database
from tests.support.parallel import is_xdist_controller, worker_redis_url
from tests.support.rabbit import amqp_test_url, private_vhost, unreachable_reason

ROOT = Path(__file__).resolve().parent.parent
EMBEDDED_STARTED = pytest.StashKey[tuple[Path, str | None, str | None]]()


def _test_data_dir() -> Path:
    path = Path(os.environ.get("VAULTCRAFT_TEST_DATA_DIR") or ROOT / ".vaultcraft" / "test")
    path.mkdir(parents=True, exist_ok=True)
    return path.resolve()


def _keep_services() -> bool:
    return os.environ.get("VAULTCRAFT_KEEP_TEST_SERVICES") == "1"


def pytest_configure(config: pytest.Config) -> None:
    """The xdist controller starts the embedded servers once, before its workers start.

    The workers inherit their URLs as given ones: none starts or stops a server that the
    others use.
    """
    given_db, given_redis = os.environ.get("DATABASE_URL"), os.environ.get("REDIS_URL")
    if not is_xdist_controller(config) or (given_db and given_redis):
        return
    data_dir = _test_data_dir()
    urls = ensure_services(data_dir, given_db, given_redis)
    config.stash[EMBEDDED_STARTED] = (data_dir, given_db, given_redis)
    os.environ["DATABASE_URL"], os.environ["REDIS_URL"] = urls.database_url, urls.redis_url


def pytest_unconfigure(config: pytest.Config) -> None:
    """The controller stops the embedded servers after the last worker has finished."""
    started = config.stash.get(EMBEDDED_STARTED, None)
    if started is not None and not _keep_services():
        stop_services(*started)


def _give_each_item_its_own_node_id(items: list[pytest.Item]) -> None:
    """schemathesis names the item of each API operation `test[GET /path]` but gives them all
    the test function's node id. xdist hands tests out by node id, and would run only one
    of them: each gets its name as its node id instead."""
    counts = Counter(item.nodeid for item in items)
    for item in items:
        if counts[item.nodeid] > 1 and item.parent is not None:
            _set_node_id(item, f"{item.parent.nodeid}::{item.name}")


def _set_node_id(item: pytest.Item, nodeid: str) -> None:
    if hasattr(item, "_id"):  # pytest 9 keeps a structured id
        from _pytest.nodeid import coerce_node_id

        item._id = coerce_node_id(nodeid)
    else:
        item._nodeid = nodeid


@pytest.hookimpl(trylast=True)
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Files with a `slow` test run first, each file's tests staying together in order.

    xdist workers take whole files in this order: the long files start at once, and the
    many short ones fill in after, so the workers finish at about the same time.
    """
    _give_each_item_its_own_node_id(items)
    slow = {item.path for item in items if item.get_closest_marker("slow") is not None}
    items.sort(key=lambda item: item.path not in slow)


@pytest.fixture(scope="session")
def test_data_dir() -> Path:
    return _test_data_dir()


@pytest.fixture(scope="session")
def service_urls(test_data_dir: Path) -> Iterator[tuple[str, str]]:
    given_db, given_redis = os.environ.get("DATABASE_URL"), os.environ.get("REDIS_URL")
    urls = ensure_services(test_data_dir, given_db, given_redis)
    redis_url = worker_redis_url(urls.redis_url)
    # Code under test that reads Settings.from_env() must find the test servers, never
    # start embedded ones of its own under the default data dir.
    os.environ["REDIS_URL"] = redis_url
    yield urls.database_url, redis_url
    if not _keep_services():
        stop_services(test_data_dir, given_db, given_redis)


@pytest.fixture(scope="session")
def database_url(service_urls: tuple[str, str]) -> Iterator[str]:
    """A fresh database, migrated to head, for this test session."""
    url = create_migrated_database(service_urls[0])
    os.environ["DATABASE_URL"] = url
    yield url
    drop_database(url)


@pytest.fixture(scope="session")
def redis_url(service_urls: tuple[str, str]) -> str:
    url = service_urls[1]
    redis.Redis.from_url(url).flushdb()
    return url


@pytest.fixture(scope="session")
def engine(database_url: str) -> Iterator[Engine]:
    eng = create_engine(database_url, pool_size=5, max_overflow=10)
    yield eng
    eng.dispose()


@pytest.fixture(scope="session")
def amqp_url() -> Iterator[str]:
    """RabbitMQ in a vhost of this session's own; skips the test when none is reachable."""
    url = amqp_test_url()
    reason = unreachable_reason(url)
    if reason is not None:
        pytest.skip(reason)
    with private_vhost(url) as own:
        yield own


@pytest.fixture(scope="session")
def service_engine(database_url: str) -> Iterator[Engine]:
    """The session database as the services see it: connected as the service role."""
    eng = create_engine(to_sqlalchemy_url(service_url(database_url)), pool_size=2)
    yield eng
    eng.dispose()


@pytest.fixture(autouse=True)
def _forget_signups(request: pytest.FixtureRequest) -> Iterator[None]:
    """Every test signs up from 127.0.0.1: none inherits another's count against the
    signup throttle. Only for tests that use Redis at all."""
    yield
    if "redis_url" in request.fixturenames:
        prefix = signup_key("")[: -len("unknown")]
        with redis.Redis.from_url(request.getfixturevalue("redis_url")) as conn:
            for key in conn.scan_iter(f"{prefix}*"):
                conn.delete(key)
