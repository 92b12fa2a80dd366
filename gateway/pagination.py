"""Cursor pagination for every list: `?limit=` (1..200, default 50) and an opaque `?cursor=`.

A cursor carries the `(created_at, id)` of the last row served (see
`ledger_core.keyset`), so pages stay stable while rows are inserted. It is
signed with a key only the server holds (an HMAC key derived from the JWT secret) over
the list it came from (method, path, organization), so a cursor the server
did not issue for this list, forged, truncated or carried over from another list, is a
`400 invalid_cursor` before any of it reaches SQL. Use::

    class ListThings(PageQuery):
        status: ThingStatus | None = None

    rows, next_key = await list_things(
        conn, ..., after=page_after(request, query), limit=query.limit
    )
    return page_response(request, [row.as_json() for row in rows], next_key)
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import re
from datetime import datetime
from typing import Any
from uuid import UUID

from aiohttp import web
from pydantic import Field

from gateway.responses import Problem, json_response
from gateway.state import PRINCIPAL, SETTINGS
from gateway.validation import QueryModel
from ledger_core.keyset import Keyset

DEFAULT_LIMIT = 50
MAX_LIMIT = 200
MAX_CURSOR_CHARS = 200
_KEY_LABEL = b"vaultcraft/list-cursor/v1"
_MAC_BYTES = 16
_INT_IDS = range(-(2**63), 2**63)
"""The ids of integer-keyed lists are PostgreSQL bigints."""
_BASE64URL = re.compile(r"[A-Za-z0-9_-]+")


class PageQuery(QueryModel):
    limit: int = Field(DEFAULT_LIMIT, ge=1, le=MAX_LIMIT, description="Page size")
    cursor: str | None = Field(None, description="`next_cursor` of the previous page")


def cursor_key(jwt_secret: str) -> bytes:
    """The cursor signing key: the JWT secret under a label of its own, never the key itself."""
    return hmac.new(jwt_secret.encode("utf-8"), _KEY_LABEL, hashlib.sha256).digest()


def list_binding(request: web.Request) -> str:
    """What a cursor is valid for: this method on this path (one wallet's statement is not
    another's), for this organization."""
    who = request.get(PRINCIPAL)
    organization = "" if who is None else str(who.organization_id)
    return f"{request.method} {request.path} {organization}"


def encode_cursor(key: bytes, binding: str, keyset: Keyset) -> str:
    kind = "u" if isinstance(keyset.id, UUID) else "i"
    payload = f"{keyset.created_at.isoformat()}|{kind}|{keyset.id}".encode()
    return f"{_b64(payload)}.{_b64(_mac(key, binding, payload))}"


def decode_cursor(
    key: bytes, binding: str, cursor: str, ids: type[UUID] | type[int] = UUID
) -> Keyset:
    """The keyset of a cursor this server issued for `binding`, else `400 invalid_cursor`.

    `ids` is the type of the list's row ids; a cursor naming another type is refused too.
    """
    try:
        if len(cursor) > MAX_CURSOR_CHARS:
            raise ValueError("too long")
        encoded, signature = cursor.split(".")
        payload = _unb64(encoded)
        if not hmac.compare_digest(_unb64(signature), _mac(key, binding, payload)):
            raise ValueError("not signed by this server for this list")
        return _keyset(payload.decode("ascii"), ids)
    except (ValueError, UnicodeError, binascii.Error):
        raise Problem(
            400,
            "invalid_cursor",
            "the cursor was not issued by this list; pass next_cursor back unchanged",
            errors=[{"field": "cursor", "message": "not a cursor returned by this list"}],
        ) from None


def page_after(
    request: web.Request, query: PageQuery, ids: type[UUID] | type[int] = UUID
) -> Keyset | None:
    """Where the requested page starts: after the cursor's row, or at the newest row."""
    if query.cursor is None:
        return None
    return decode_cursor(_request_key(request), list_binding(request), query.cursor, ids)


def page_response(request: web.Request, data: list[Any], next_key: Keyset | None) -> web.Response:
    return json_response({"data": data, "next_cursor": next_cursor(request, next_key)})


def next_cursor(request: web.Request, next_key: Keyset | None) -> str | None:
    """The signed cursor of the next page of this list, or None on the last page."""
    if next_key is None:
        return None
    return encode_cursor(_request_key(request), list_binding(request), next_key)


def _keyset(text: str, ids: type[UUID] | type[int]) -> Keyset:
    """Each field checked again although signed: a leaked key must still not reach SQL raw."""
    moment, kind, ident = text.split("|")
    created_at = datetime.fromisoformat(moment)
    if created_at.tzinfo is None:
        raise ValueError("naive timestamp")
    if kind == "u" and ids is UUID:
        return Keyset(created_at, UUID(ident))
    if kind == "i" and ids is int and ident.lstrip("-").isdigit() and int(ident) in _INT_IDS:
        return Keyset(created_at, int(ident))
    raise ValueError("unknown id")


def _request_key(request: web.Request) -> bytes:
    return cursor_key(request.app[SETTINGS].jwt_secret)


def _mac(key: bytes, binding: str, payload: bytes) -> bytes:
    message = binding.encode("utf-8") + b"\n" + payload
    return hmac.new(key, message, hashlib.sha256).digest()[:_MAC_BYTES]


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).decode("ascii").rstrip("=")


def _unb64(text: str) -> bytes:
    if not _BASE64URL.fullmatch(text):
        raise ValueError("not base64url")
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
