"""The workers' pools ping a connection before handing it out only when it sat idle.

Every posting batch, relay round and seal checks a connection out; under load the pool
hands back the one returned a moment ago, and a ping then would be a round trip a batch
for nothing. After `idle_s` the connection is pinged, and a connection the server closed
meanwhile is replaced before anyone uses it.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager

import pytest
from sqlalchemy import Engine, text
from sqlalchemy.exc import OperationalError

from ledger_core.persistence.direct import fetch_all_sync
from workers import db

SHORT_S = 0.2
"""An idle time the tests wait out."""
LONG_S = 60.0
"""An idle time no test waits out, however slow the machine."""


@contextmanager
def counted_pings(
    database_url: str, monkeypatch: pytest.MonkeyPatch, idle_s: float, size: int = 1
) -> Iterator[tuple[Engine, list[int]]]:
    """A worker pool of `size` connections that pings after `idle_s`, and a count of its
    pings."""
    monkeypatch.setattr(db, "IDLE_BEFORE_PING_S", idle_s)
    engine = db.pooled_engine(database_url, pool_size=size, max_overflow=0)
    pings = [0]
    ping = engine.dialect.do_ping

    def counting(dbapi: object) -> bool:
        pings[0] += 1
        return ping(dbapi)

    engine.dialect.do_ping = counting  # type: ignore[method-assign]
    try:
        yield engine, pings
    finally:
        engine.dispose()


def backend_pid(engine: Engine) -> int:
    with engine.connect() as conn:
        return int(conn.execute(text("SELECT pg_backend_pid()")).scalar_one())


def backend_pids_of_two(engine: Engine) -> set[int]:
    """The backends of two connections checked out at once: with a pool of two, both."""
    with engine.connect() as one, engine.connect() as two:
        return {int(c.execute(text("SELECT pg_backend_pid()")).scalar_one()) for c in (one, two)}


def terminate(engine: Engine, pid: int) -> None:
    """Close another session from the server's side, as a restart or a timeout would."""
    with engine.connect() as conn:
        conn.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": pid})
        conn.commit()


def test_a_connection_back_a_moment_ago_is_handed_out_without_a_ping(
    database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    with counted_pings(database_url, monkeypatch, LONG_S) as (engine, pings):
        first = backend_pid(engine)  # a new connection: nothing to ping
        assert [backend_pid(engine) for _ in range(20)] == [first] * 20
        assert pings == [0]


def test_a_connection_idle_for_a_while_is_pinged(
    database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    with counted_pings(database_url, monkeypatch, SHORT_S) as (engine, pings):
        first = backend_pid(engine)
        time.sleep(SHORT_S * 1.5)
        assert backend_pid(engine) == first
        assert pings == [1]
        assert backend_pid(engine) == first  # and not again right after (or the machine
        assert pings[0] in (1, 2)  # took longer than the idle time between the two)


def test_an_idle_connection_the_server_closed_is_replaced_before_use(
    database_url: str, engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    with counted_pings(database_url, monkeypatch, SHORT_S) as (pool, pings):
        first = backend_pid(pool)
        terminate(engine, first)
        time.sleep(SHORT_S * 1.5)
        second = backend_pid(pool)  # no error: the ping found it dead
        assert second != first
        assert pings == [1]


def test_a_connection_cut_while_in_use_fails_once_and_leaves_the_pool(
    database_url: str, engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Within the idle time nothing pings: the statement that finds the cut fails (the
    batch is tried again, as after any lost connection) and the next checkout connects."""
    with counted_pings(database_url, monkeypatch, LONG_S) as (pool, pings):
        first = backend_pid(pool)
        terminate(engine, first)
        with pytest.raises(OperationalError) as cut, pool.connect() as conn:
            conn.execute(text("SELECT 1"))
        assert cut.value.connection_invalidated
        assert backend_pid(pool) != first
        assert pings == [0]


def test_after_one_connection_is_found_cut_the_others_are_pinged_before_use(
    database_url: str, engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A restart under load cuts every pooled connection; the first statement to meet a
    cut fails, and the connections returned before it are pinged (and replaced) at their
    next checkout instead of each failing a statement of its own. The statement runs on
    the driver's connection, as a posting batch's do (`fetch_all_sync`), which leaves the
    rest of the pool to these pings (SQLAlchemy's own execution would recycle it)."""
    with counted_pings(database_url, monkeypatch, LONG_S, size=2) as (pool, pings):
        old = backend_pids_of_two(pool)
        for pid in old:
            terminate(engine, pid)
        with pytest.raises(OperationalError), pool.connect() as conn:
            fetch_all_sync(conn, text("SELECT 1"), {})
        new = backend_pids_of_two(pool)  # the old connection left is among them
        assert new.isdisjoint(old)
        assert pings == [1]
