"""Statements run on the driver's connection (`ledger_core.persistence.direct`) against real
PostgreSQL, on async (the gateway's) and sync (the posting workers') connections: the same
SQL, transaction, savepoints and errors as through SQLAlchemy, and a connection that broke
under a statement is dropped by the pool instead of being handed out again."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import Iterator
from contextlib import contextmanager

import psycopg
import pytest
from psycopg.pq import Format
from psycopg.rows import dict_row
from sqlalchemy import Engine, NullPool, TextClause, create_engine, text
from sqlalchemy.exc import IntegrityError, OperationalError, ProgrammingError
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from ledger_core import canonical_json
from ledger_core.persistence.direct import Savepoint, driver_sql, fetch_all, fetch_all_sync
from runtime.settings import to_psycopg_url

ROWS = text("SELECT n, n * 2 AS twice FROM generate_series(1, :upto) AS n")


def _run(database_url: str, body, **engine_options):  # type: ignore[no-untyped-def]
    async def main():  # type: ignore[no-untyped-def]
        engine = create_async_engine(database_url, **engine_options)
        try:
            return await body(engine)
        finally:
            await engine.dispose()

    return asyncio.run(main())


def test_a_text_clause_becomes_psycopg_placeholders_with_literal_percent_doubled() -> None:
    clause = text("SELECT CAST(:ids AS uuid[]), x::text, '50%' LIKE :p, :p")
    assert driver_sql(clause) == "SELECT CAST(%(ids)s AS uuid[]), x::text, '50%%' LIKE %(p)s, %(p)s"


def test_rows_come_back_as_named_tuples_or_as_the_factory_builds_them(database_url: str) -> None:
    async def body(engine: AsyncEngine) -> tuple[list, list, list]:  # type: ignore[type-arg]
        async with engine.connect() as conn:
            named = await fetch_all(conn, ROWS, {"upto": 3})
            dicts = await fetch_all(conn, ROWS, {"upto": 2}, row_factory=dict_row)
            none = await fetch_all(conn, text("SET LOCAL work_mem = '8MB'"), {})
        return named, dicts, none

    named, dicts, none = _run(database_url, body, poolclass=NullPool)
    assert [(r.n, r.twice) for r in named] == [(1, 2), (2, 4), (3, 6)]
    assert named[2][1] == 6
    assert dicts == [{"n": 1, "twice": 2}, {"n": 2, "twice": 4}]
    assert none == []


def test_a_statement_joins_the_callers_transaction_and_its_rollback(database_url: str) -> None:
    table = f"direct_{uuid.uuid4().hex[:8]}"

    async def body(engine: AsyncEngine) -> tuple[int, int]:
        async with engine.begin() as conn:
            await conn.execute(text(f"CREATE TABLE {table} (n int PRIMARY KEY)"))
        async with engine.connect() as conn:
            await fetch_all(conn, text(f"INSERT INTO {table} VALUES (:n)"), {"n": 1})
            await conn.rollback()
        async with engine.begin() as conn:
            await fetch_all(conn, text(f"INSERT INTO {table} VALUES (:n)"), {"n": 2})
        auto = await engine.execution_options(isolation_level="AUTOCOMMIT").connect()
        await fetch_all(auto, text(f"INSERT INTO {table} VALUES (:n)"), {"n": 3})
        await auto.close()
        async with engine.connect() as conn:
            rows = await fetch_all(conn, text(f"SELECT n FROM {table} ORDER BY n"), {})
            await conn.execute(text(f"DROP TABLE {table}"))
            await conn.commit()
        return tuple(r.n for r in rows)  # type: ignore[return-value]

    assert _run(database_url, body, poolclass=NullPool) == (2, 3)


def test_a_database_error_is_raised_as_sqlalchemy_raises_it(database_url: str) -> None:
    table = f"direct_{uuid.uuid4().hex[:8]}"

    async def body(engine: AsyncEngine) -> None:
        auto = engine.execution_options(isolation_level="AUTOCOMMIT")
        async with auto.connect() as conn:
            await fetch_all(conn, text(f"CREATE TABLE {table} (n int PRIMARY KEY)"), {})
            insert = text(f"INSERT INTO {table} VALUES (:n)")
            await fetch_all(conn, insert, {"n": 1})
            with pytest.raises(IntegrityError) as taken:
                await fetch_all(conn, insert, {"n": 1})
            assert getattr(taken.value.orig, "sqlstate", None) == "23505"
            with pytest.raises(ProgrammingError):
                await fetch_all(conn, text("SELECT * FROM no_such_table_here"), {})
            assert [r.n for r in await fetch_all(conn, text(f"SELECT n FROM {table}"), {})] == [1]
            await fetch_all(conn, text(f"DROP TABLE {table}"), {})

    _run(database_url, body, poolclass=NullPool)


def test_a_connection_that_broke_under_a_statement_is_not_handed_out_again(
    database_url: str,
) -> None:
    async def body(engine: AsyncEngine) -> tuple[int, int]:
        async with engine.connect() as conn:
            first = (await fetch_all(conn, text("SELECT pg_backend_pid() AS pid"), {}))[0].pid
        async with engine.connect() as conn:
            with pytest.raises(OperationalError) as cut:
                await fetch_all(conn, text("SELECT pg_terminate_backend(pg_backend_pid())"), {})
            assert cut.value.connection_invalidated
        async with engine.connect() as conn:
            second = (await fetch_all(conn, text("SELECT pg_backend_pid() AS pid"), {}))[0].pid
        return first, second

    first, second = _run(database_url, body, pool_size=1, max_overflow=0)
    assert first != second


def test_sync_rows_come_back_as_tuples_or_as_the_factory_builds_them(database_url: str) -> None:
    engine = create_engine(database_url, poolclass=NullPool)
    try:
        with engine.connect() as conn:
            assert fetch_all_sync(conn, ROWS, {"upto": 2}) == [(1, 2), (2, 4)]
            assert fetch_all_sync(conn, ROWS, {"upto": 1}, dict_row) == [{"n": 1, "twice": 2}]
            assert fetch_all_sync(conn, text("SET LOCAL work_mem = '8MB'"), {}) == []
    finally:
        engine.dispose()


@contextmanager
def scratch_table(database_url: str) -> Iterator[tuple[Engine, str, TextClause]]:
    """An engine, a fresh table `(n int PRIMARY KEY)` (dropped afterwards) and its insert."""
    table = f"direct_{uuid.uuid4().hex[:8]}"
    engine = create_engine(database_url, poolclass=NullPool)
    try:
        with engine.begin() as conn:
            conn.execute(text(f"CREATE TABLE {table} (n int PRIMARY KEY)"))
        yield engine, table, text(f"INSERT INTO {table} VALUES (:n)")
        with engine.begin() as conn:
            conn.execute(text(f"DROP TABLE {table}"))
    finally:
        engine.dispose()


def test_a_sync_error_under_a_savepoint_leaves_the_outer_transaction_usable(
    database_url: str,
) -> None:
    """A failed write under `begin_nested` is rolled back to its savepoint, and the
    transaction (its row locks, its earlier writes) goes on."""
    with scratch_table(database_url) as (engine, table, insert):
        with engine.begin() as conn:
            fetch_all_sync(conn, insert, {"n": 1})
            with pytest.raises(IntegrityError) as taken, conn.begin_nested():
                fetch_all_sync(conn, insert, {"n": 2})
                fetch_all_sync(conn, insert, {"n": 1})
            assert getattr(taken.value.orig, "sqlstate", None) == "23505"
            with conn.begin_nested():
                fetch_all_sync(conn, insert, {"n": 3})
        with engine.begin() as conn:
            kept = fetch_all_sync(conn, text(f"SELECT n FROM {table} ORDER BY n"), {})
            with pytest.raises(ProgrammingError), conn.begin_nested():
                fetch_all_sync(conn, text("SELECT * FROM no_such_table_here"), {})
    assert kept == [(1,), (3,)]


def test_a_driver_savepoint_rolls_back_to_itself_and_commits_unreleased(database_url: str) -> None:
    """What a posting batch relies on (`Savepoint`): a failed write rolled back to its
    savepoint leaves the transaction usable with its earlier writes; a savepoint of a name
    already set is the one `rollback()` returns to; savepoints never released commit."""
    with scratch_table(database_url) as (engine, table, insert):
        with engine.begin() as conn:
            fetch_all_sync(conn, insert, {"n": 1})
            claim = Savepoint(conn, "claim")
            fetch_all_sync(conn, insert, {"n": 2})
            attempt = Savepoint(conn, "attempt")
            with pytest.raises(IntegrityError):
                fetch_all_sync(conn, insert, {"n": 1})
            attempt.rollback()
            fetch_all_sync(conn, insert, {"n": 3})
            half = Savepoint(conn, "attempt")
            fetch_all_sync(conn, insert, {"n": 4})
            half.rollback()
            fetch_all_sync(conn, insert, {"n": 5})
        with engine.begin() as conn:
            kept = fetch_all_sync(conn, text(f"SELECT n FROM {table} ORDER BY n"), {})
            claim = Savepoint(conn, "claim")
            fetch_all_sync(conn, insert, {"n": 6})
            claim.rollback()
            undone = fetch_all_sync(conn, text(f"SELECT count(*) FROM {table} WHERE n = 6"), {})
    assert kept == [(1,), (2,), (3,), (5,)]
    assert undone == [(0,)]
    with pytest.raises(ValueError, match="not a savepoint name"):
        Savepoint(None, "x; DROP TABLE wallets")  # type: ignore[arg-type]


def test_a_sync_connection_that_broke_under_a_statement_is_not_handed_out_again(
    database_url: str,
) -> None:
    engine = create_engine(database_url, pool_size=1, max_overflow=0)
    pid = text("SELECT pg_backend_pid()")
    try:
        with engine.connect() as conn:
            [(first,)] = fetch_all_sync(conn, pid, {})
        with engine.connect() as conn:
            with pytest.raises(OperationalError) as cut:
                fetch_all_sync(conn, text("SELECT pg_terminate_backend(pg_backend_pid())"), {})
            assert cut.value.connection_invalidated
        with engine.connect() as conn:
            [(second,)] = fetch_all_sync(conn, pid, {})
    finally:
        engine.dispose()
    assert first != second


def test_json_is_read_back_as_the_standard_library_reads_it_by_the_canonical_decoder(
    database_url: str,
) -> None:
    """Every connection, SQLAlchemy's and the driver's own, decodes `json` and `jsonb` with
    `canonical_json.loads` (set when `ledger_core.persistence` is imported): orjson's speed,
    and the standard library's value where the two differ (integers beyond 64 bits)."""
    stored = {"order": "x", "big": 2**70, "nested": [1, {"é": None}], "n": -(2**63)}
    engine = create_engine(database_url, poolclass=NullPool)
    try:
        with engine.connect() as conn:
            raw = conn.connection.driver_connection
            jsonb = raw.adapters.types["jsonb"].oid
            assert raw.adapters.get_loader(jsonb, Format.TEXT)._loads is canonical_json.loads
            read = conn.execute(text("SELECT CAST(:v AS jsonb)"), {"v": json.dumps(stored)})
            assert read.scalar_one() == stored
    finally:
        engine.dispose()
    with psycopg.connect(to_psycopg_url(database_url)) as plain:
        assert plain.execute("SELECT '{\"a\": [1, 2]}'::json").fetchone() == ({"a": [1, 2]},)
        loader = plain.adapters.get_loader(plain.adapters.types["json"].oid, Format.TEXT)
        assert loader._loads is canonical_json.loads
