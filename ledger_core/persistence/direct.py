"""The gateway's per-request statements, run on the driver's own connection.

SQLAlchemy's async execution of a text statement costs about three times psycopg's CPU:
a greenlet hop, an execution context, and result metadata rebuilt from the statement's
column description at every call (0.48 against 0.16 ms for a 10-row, 35-column
`RETURNING *`; BENCHMARKS.md). The gateway runs such statements for every group commit and
long-poll read on its one event loop, so there it is worth going around.

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
from psycopg.rows import RowFactory, namedtuple_row
from sqlalchemy import TextClause
from sqlalchemy.dialects.postgresql.psycopg import PGDialect_psycopg
from sqlalchemy.exc import DBAPIError
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
        cursor = driver.cursor(row_factory=row_factory)
        await cursor.execute(sql, params)
        return await cursor.fetchall() if cursor.pgresult and cursor.pgresult.nfields else []
    except psycopg.Error as exc:
        broken = driver.closed or driver.broken
        if broken:
            await conn.invalidate(exc)
        raise DBAPIError.instance(
            sql, params, exc, psycopg.Error, connection_invalidated=broken, dialect=_DIALECT
        ) from exc
