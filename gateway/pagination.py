"""Cursor pagination for every list: `?limit=` (1..200, default 50) and an opaque `?cursor=`.

A cursor encodes the `(created_at, id)` of the last row served (see
`ledger_core.keyset`), so pages stay stable while rows are inserted. Use::

    class ListThings(PageQuery):
        status: ThingStatus | None = None

    rows, next_key = await list_things(conn, ..., after=page_after(query), limit=query.limit)
    return page_response([row.as_json() for row in rows], next_key)
"""

from __future__ import annotations

import base64
import binascii
from datetime import datetime
from typing import Any
from uuid import UUID

from aiohttp import web
from pydantic import Field

from gateway.responses import json_response, validation_problem
from gateway.validation import QueryModel
from ledger_core.keyset import Keyset

DEFAULT_LIMIT = 50
MAX_LIMIT = 200


class PageQuery(QueryModel):
    limit: int = Field(DEFAULT_LIMIT, ge=1, le=MAX_LIMIT, description="Page size")
    cursor: str | None = Field(
        None, max_length=200, description="`next_cursor` of the previous page"
    )


def encode_cursor(key: Keyset) -> str:
    kind = "u" if isinstance(key.id, UUID) else "i"
    raw = f"{key.created_at.isoformat()}|{kind}|{key.id}".encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str) -> Keyset:
    """The keyset a cursor stands for; anything not made by `encode_cursor` is a 422."""
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        moment, kind, ident = raw.split("|")
        created_at = datetime.fromisoformat(moment)
        if created_at.tzinfo is None:
            raise ValueError("naive timestamp")
        key_id: UUID | int = UUID(ident) if kind == "u" else int(ident)
        if kind not in {"u", "i"}:
            raise ValueError("unknown id kind")
    except (ValueError, UnicodeDecodeError, binascii.Error):
        raise validation_problem("cursor", "not a cursor returned by this list") from None
    return Keyset(created_at, key_id)


def page_after(query: PageQuery) -> Keyset | None:
    return None if query.cursor is None else decode_cursor(query.cursor)


def int_page_after(query: PageQuery) -> Keyset | None:
    """The cursor of a list ordered by integer ids; a cursor of another list is a 422."""
    after = page_after(query)
    if after is not None and not isinstance(after.id, int):
        raise validation_problem("cursor", "not a cursor returned by this list")
    return after


def page_response(data: list[Any], next_key: Keyset | None) -> web.Response:
    next_cursor = None if next_key is None else encode_cursor(next_key)
    return json_response({"data": data, "next_cursor": next_cursor})
