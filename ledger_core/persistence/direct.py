"""Statements of the hot paths, run on the driver's own connection.

SQLAlchemy's async execution of a text statement costs about three times psycopg's CPU:
a greenlet hop, an execution context, and result metadata rebuilt from the statement's
column description at every call (0.48 against 0.16 ms for a 10-row, 35-column
`RETURNING *`; BENCHMARKS.md). Its synchronous execution costs about twice psycopg's
(0.48 against 0.20 ms for 20 rows of 35 columns, 0.13 against 0.07 for `SELECT 1`). The
gateway runs such statements for every group commit and long-poll read on its one event
loop (`fetch_all`), and a posting batch runs a dozen whatever its size (`fetch_all_sync`):
there it is worth going around.

Only the execution goes around SQLAlchemy. The statement stays a `text()` clause, compiled
once for psycopg; it runs on the connection the caller checked out of the engine's pool,
in that connection's transaction or autocommit; and a database error is raised as the
`DBAPIError` SQLAlchemy would raise, with a broken connection invalidated so that the pool
drops it.
"""

from __future__ import annotations

from collections.abc import Mapping
from functools import lru_cache
from typing import Any

import psycopg
from psycopg.rows import RowFactory, namedtuple_row, tuple_row
from sqlalchemy import Connection, TextClause, text
from sqlalchemy.dialects.postgresql.psycopg import PGDialect_psycopg
from sqlalchemy.exc import DBAPIError, StatementError
from sqlalchemy.ext.asyncio import AsyncConnection

_DIALECT = PGDialect_psycopg()  # type: ignore[no-untyped-call]


@lru_cache(maxsize=128)
def driver_sql(clause: TextClause) -> str:
    """`clause` as psycopg takes it: `%(name)s` placeholders, a literal `%` doubled."""
    return str(clause.compile(dialect=_DIALECT))


async def fetch_all(
    conn: AsyncConnection,
    clause: TextClause,
    params: Mapping[str, Any],
    row_factory: RowFactory[Any] = namedtuple_row,
) -> list[Any]:
    """Run `clause` on `conn`'s psycopg connection; its rows (none for a statement that
    returns none), as `row_factory` builds them: named tuples unless told otherwise."""
    raw = await conn.get_raw_connection()
    driver: psycopg.AsyncConnection[Any] = raw.driver_connection  # type: ignore[assignment]
    sql = driver_sql(clause)
    try:
        async with driver.cursor(row_factory=row_factory) as cursor:
            await cursor.execute(sql, params)
            return await cursor.fetchall() if _returns_rows(cursor) else []
    except psycopg.Error as exc:
        broken = driver.closed or driver.broken
        if broken:
            await conn.invalidate(exc)
        raise _as_sqlalchemy_error(sql, params, exc, broken) from exc


def fetch_all_sync(
    conn: Connection,
    clause: TextClause,
    params: Mapping[str, Any],
    row_factory: RowFactory[Any] = tuple_row,
) -> list[Any]:
    """`fetch_all` for a synchronous connection; rows are plain tuples unless told otherwise."""
    driver: psycopg.Connection[Any] = conn.connection.driver_connection  # type: ignore[assignment]
    sql = driver_sql(clause)
    try:
        with driver.cursor(row_factory=row_factory) as cursor:
            cursor.execute(sql, params)
            return cursor.fetchall() if _returns_rows(cursor) else []
    except psycopg.Error as exc:
        broken = driver.closed or driver.broken
        if broken:
            conn.invalidate(exc)
        raise _as_sqlalchemy_error(sql, params, exc, broken) from exc


def _returns_rows(cursor: psycopg.AsyncCursor[Any] | psycopg.Cursor[Any]) -> bool:
    return bool(cursor.pgresult and cursor.pgresult.nfields)


def _as_sqlalchemy_error(
    sql: str, params: Mapping[str, Any], exc: psycopg.Error, broken: bool
) -> StatementError:
    """The `DBAPIError` subclass SQLAlchemy raises for `exc` (`orig` is `exc`)."""
    return DBAPIError.instance(
        sql, params, exc, psycopg.Error, connection_invalidated=broken, dialect=_DIALECT
    )


class Savepoint:
    """A savepoint on the driver's connection, for a posting batch's hot path.

    SQLAlchemy's `begin_nested()` costs about 0.2 ms of client CPU for a savepoint and its
    release, and a posting batch takes two (BENCHMARKS.md). This one is a single statement
    and is never released: a savepoint need not be, its changes commit with the
    transaction, and releasing it only merges it into the one around it, which commits
    them all the same. `rollback()` undoes what came after it (the savepoint stays set).
    Names may repeat: `ROLLBACK TO` goes to the newest savepoint of that name, which is
    this one as long as it is rolled back before another of its name is set.
    """

    def __init__(self, conn: Connection, name: str) -> None:
        self.conn = conn
        self.name = name
        fetch_all_sync(conn, _savepoint_statement("SAVEPOINT", name), {})

    def rollback(self) -> None:
        fetch_all_sync(self.conn, _savepoint_statement("ROLLBACK TO SAVEPOINT", self.name), {})


@lru_cache(maxsize=16)
def _savepoint_statement(verb: str, name: str) -> TextClause:
    if not name.isidentifier():
        raise ValueError(f"not a savepoint name: {name!r}")
    return text(f"{verb} {name}")
