"""Every service connection runs without JIT compilation.

The scheduler's gauges and the relay's backlog read estimate their cost from the size of
tables that only grow (the outbox, the waiting transfers), so past some size PostgreSQL
would compile them for 100-400 ms each time, to run for a millisecond. The services'
connections turn JIT off (`SERVICE_SESSION_OPTIONS`); here a statement that PostgreSQL
would compile, had it the chance, is planned on each kind of connection a service opens.
"""

from __future__ import annotations

import json

import psycopg
from sqlalchemy import Connection, create_engine, text

from ledger_core.persistence.events.outbox_relay import OUTBOX_BACKLOG_SQL
from runtime.settings import Settings, to_psycopg_url, to_sqlalchemy_url
from workers import db


def _compiles(conn: psycopg.Connection[tuple[object, ...]]) -> bool:
    """Whether PostgreSQL compiles the outbox backlog read, offered JIT at any cost."""
    conn.execute("SET jit_above_cost = 0")
    (plan,) = conn.execute(f"EXPLAIN (ANALYZE, FORMAT JSON) {OUTBOX_BACKLOG_SQL}").fetchone() or ()
    return "JIT" in json.dumps(plan)


def _jit(conn: Connection) -> str:
    return str(conn.execute(text("SHOW jit")).scalar())


def test_worker_and_relay_connections_never_compile(database_url: str) -> None:
    libpq = to_psycopg_url(db.database_url(Settings.from_env()))
    with psycopg.connect(libpq) as conn:
        assert conn.execute("SHOW jit").fetchone() == ("off",)
        assert not _compiles(conn)


def test_the_gateway_engine_runs_without_jit(database_url: str) -> None:
    engine = create_engine(Settings.from_env().sqlalchemy_url, pool_size=1)
    try:
        with engine.connect() as conn:
            assert _jit(conn) == "off"
    finally:
        engine.dispose()


def test_the_owner_connection_keeps_the_server_default(database_url: str) -> None:
    """The checks above mean something: a connection without the services' options has
    JIT on, and compiles the same read where the server was built with JIT."""
    owner = create_engine(to_sqlalchemy_url(database_url), pool_size=1)
    try:
        with owner.connect() as conn:
            assert _jit(conn) == "on"
    finally:
        owner.dispose()
    with psycopg.connect(to_psycopg_url(database_url)) as conn:
        if conn.execute("SELECT pg_jit_available()").fetchone() == (True,):
            assert _compiles(conn)
