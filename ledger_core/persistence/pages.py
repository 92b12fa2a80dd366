"""Keyset pagination, newest first: stable under concurrent inserts, and index-friendly.

A page continues strictly after the `(created_at, id)` of the last row of the previous
page, so a list served from an index on `(tenant, created_at[, id])` never rescans the
rows it has already returned. The gateway turns a `Keyset` into an opaque cursor.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Sequence
from typing import Any, TypeVar

from sqlalchemy import ColumnElement, Executable, Row, Select, Table, tuple_
from sqlalchemy.ext.asyncio import AsyncConnection

from ledger_core.keyset import Keyset

T = TypeVar("T")


def newest_first(
    stmt: Select[Any],
    created_at: ColumnElement[Any],
    row_id: ColumnElement[Any],
    after: Keyset | None,
    limit: int,
) -> Select[Any]:
    """Order `stmt` newest first, skip to after `after`, and fetch one row beyond `limit`.

    The extra row tells `split_page` whether another page exists without a COUNT.
    """
    if after is not None:
        stmt = stmt.where(tuple_(created_at, row_id) < tuple_(after.created_at, after.id))
    return stmt.order_by(created_at.desc(), row_id.desc()).limit(limit + 1)


def split_page(
    rows: Sequence[T], limit: int, key: Callable[[T], Keyset]
) -> tuple[list[T], Keyset | None]:
    """The page's rows and the keyset to continue from, or None on the last page."""
    page = list(rows[:limit])
    if len(rows) > limit and page:
        return page, key(page[-1])
    return page, None


async def stream_chunks(
    conn: AsyncConnection, stmt: Executable, params: dict[str, Any], chunk: int
) -> AsyncIterator[list[dict[str, Any]]]:
    """Every row of `stmt`, `chunk` rows at a time, through a server-side cursor: memory
    stays flat however many rows there are (the connection must be in a transaction)."""
    result = await conn.stream(stmt, params)
    async for part in result.partitions(chunk):
        yield [dict(r._mapping) for r in part]


async def read_page(
    conn: AsyncConnection, stmt: Executable, limit: int
) -> tuple[list[Row[Any]], Keyset | None]:
    """Run a page query (`newest_first`, one row beyond `limit`) whose rows carry
    `created_at` and `id`: the page's rows and the keyset to continue from."""
    rows = (await conn.execute(stmt)).all()
    return split_page(rows, limit, lambda r: Keyset(r.created_at, r.id))


async def newest_page(
    conn: AsyncConnection,
    stmt: Select[Any],
    table: Table,
    make: Callable[[Row[Any]], T],
    *,
    after: Keyset | None,
    limit: int,
) -> tuple[list[T], Keyset | None]:
    """One page of what `stmt` selects from `table`, newest first by its `(created_at, id)`,
    each row made into a value, and the keyset to continue from."""
    stmt = newest_first(stmt, table.c.created_at, table.c.id, after, limit)
    page, next_key = await read_page(conn, stmt, limit)
    return [make(r) for r in page], next_key
