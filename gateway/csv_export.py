"""CSV downloads, streamed: rows go out a chunk at a time as the database cursor yields them.

Nothing holds the whole export, so a statement of a million entries costs the memory of one
chunk. Free text a spreadsheet would run as a formula (`=`, `+`, `-`, `@` first) is
quoted with a leading `'`.
"""

from __future__ import annotations

import csv
import io
from collections.abc import AsyncIterator, Callable, Sequence
from typing import Any

from aiohttp import web

CHUNK_ROWS = 1000
"""Rows fetched from the server-side cursor, and written, at a time."""

_FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def wants_csv(request: web.Request, format_: str | None) -> bool:
    """`?format=csv`, or `Accept: text/csv` without `?format=json`."""
    if format_ is not None:
        return format_ == "csv"
    return "text/csv" in request.headers.get("Accept", "")


def text_cell(value: str | None) -> str:
    """Caller-supplied text, defused for spreadsheets."""
    if value is None:
        return ""
    return "'" + value if value.startswith(_FORMULA_STARTS) else value


async def stream_csv(
    request: web.Request,
    filename: str,
    header: Sequence[str],
    chunks: AsyncIterator[list[dict[str, Any]]],
    render: Callable[[dict[str, Any]], Sequence[Any]],
) -> web.StreamResponse:
    """Send a header row, then each chunk's rows as `render` lays them out."""
    response = web.StreamResponse(
        headers={
            "Content-Type": "text/csv; charset=utf-8",
            "Content-Disposition": f'attachment; filename="{filename}"',
        }
    )
    await response.prepare(request)
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\r\n")
    writer.writerow(header)
    async for rows in chunks:
        writer.writerows(render(row) for row in rows)
        await response.write(buffer.getvalue().encode())
        buffer.seek(0)
        buffer.truncate()
    await response.write(buffer.getvalue().encode())
    await response.write_eof()
    return response
