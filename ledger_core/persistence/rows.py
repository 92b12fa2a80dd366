"""One row at a time: the lookup of a tenant's row by id, and turning what a statement
returns into a value.

Most storage functions read or write one row and hand back a domain value, or None when
the row is not there (another tenant's included): the use case decides what that means.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar
from uuid import UUID

from sqlalchemy import ColumnElement, Executable, Row, Table
from sqlalchemy.ext.asyncio import AsyncConnection

T = TypeVar("T")


def owned(table: Table, organization_id: UUID, row_id: UUID) -> tuple[ColumnElement[bool], ...]:
    """The conditions for the row `row_id` of `table` if it is the organization's."""
    return (table.c.id == row_id, table.c.organization_id == organization_id)


async def one_or_none(
    conn: AsyncConnection, stmt: Executable, make: Callable[[Row[Any]], T]
) -> T | None:
    """The one row `stmt` returns, made into a value; None when it returns none."""
    row = (await conn.execute(stmt)).one_or_none()
    return None if row is None else make(row)


async def exactly_one(conn: AsyncConnection, stmt: Executable, make: Callable[[Row[Any]], T]) -> T:
    """The one row `stmt` returns (an INSERT or UPDATE ... RETURNING), made into a value."""
    return make((await conn.execute(stmt)).one())
