"""Running the suite on several pytest-xdist workers at once (`make test` does).

Each worker is a pytest session of its own: it migrates a database of its own on the
shared PostgreSQL server (as every session does) and uses a Redis database of its own,
numbered from the one of `REDIS_URL`: worker `gw0` the given number, `gw1` the next, and
so on. Dramatiq's queues, the doorbells and every throttle counter then stay private to a
worker, and a test that flushes its Redis database never touches another worker's.

The embedded servers (no `DATABASE_URL` / `REDIS_URL`) are started once by the xdist
controller before any worker starts, and stopped by it after the last one has finished.
"""

from __future__ import annotations

import os
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import pytest


def is_xdist_controller(config: pytest.Config) -> bool:
    """Whether this process hands tests out to xdist workers instead of running them."""
    if hasattr(config, "workerinput") or config.getoption("collectonly"):
        return False
    return getattr(config.option, "dist", "no") != "no" and bool(getattr(config.option, "tx", []))


def worker_index() -> int:
    """This worker's number (`gw3` is 3); 0 outside xdist."""
    name = os.environ.get("PYTEST_XDIST_WORKER", "gw0")
    return int(name.removeprefix("gw"))


def redis_database_of(url: str) -> int:
    """The database number a Redis URL selects: `?db=` first, else the path, else 0."""
    parts = urlsplit(url)
    query = dict(parse_qsl(parts.query))
    if "db" in query:
        return int(query["db"])
    if parts.scheme != "unix" and parts.path.strip("/"):
        return int(parts.path.strip("/"))
    return 0


def with_redis_database(url: str, number: int) -> str:
    """`url` selecting Redis database `number` instead of its own."""
    parts = urlsplit(url)
    query = [(key, value) for key, value in parse_qsl(parts.query) if key != "db"]
    if parts.scheme == "unix":  # urlunsplit would drop the `//` of a URL without a host
        return f"unix://{parts.path}?{urlencode([*query, ('db', str(number))])}"
    return urlunsplit(parts._replace(path=f"/{number}", query=urlencode(query)))


def worker_redis_url(url: str) -> str:
    """The Redis database of this worker: the one of `url` plus the worker's number."""
    index = worker_index()
    if index == 0:
        return url
    return with_redis_database(url, redis_database_of(url) + index)
