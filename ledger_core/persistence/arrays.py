"""Array parameters as PostgreSQL array literals, built once per statement.

The set-based statements pass whole columns as arrays (`unnest(CAST(:ids AS uuid[]))`).
Handed a Python list, the driver dumps it element by element and escapes every element
with a regular-expression substitution, which costs more CPU than the rest of a posting
batch's Python. A literal built here is one string: UUIDs, integers and booleans need no
quoting, text is double-quoted with its backslashes and double quotes escaped, `None` is
`NULL`.
The statement's CAST gives the array its type, so the server parses it as before.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any
from uuid import UUID


def pg_array(values: Iterable[object]) -> str:
    """The array literal of `values` (UUIDs, integers, booleans, strings or None)."""
    items = list(values)
    kinds = set(map(type, items))
    if len(kinds) == 1:
        whole = _WHOLE.get(kinds.pop())
        if whole is not None:
            return "{" + whole(items) + "}"
    return "{" + ",".join([_FORMATS.get(type(v), _element)(v) for v in items]) + "}"


def pg_uuid_array(values: Iterable[object]) -> str:
    """The literal of a `uuid[]` parameter: UUIDs as their 32 hex digits, which PostgreSQL
    reads as the same uuid and Python writes four times faster than `str(uuid)` (posting
    writes about fifteen a transfer); anything else as `pg_array` writes it."""
    return (
        "{" + ",".join([f"{v.int:032x}" if type(v) is UUID else _element(v) for v in values]) + "}"
    )


def _texts(items: list[str]) -> str:
    """Every element (at least one) quoted and escaped at once: joined by NUL, which no
    text element holds (PostgreSQL refuses it), escaping the whole string escapes each
    element alone."""
    joined = "\x00".join(items)
    if joined.count("\x00") != len(items) - 1:
        return ",".join([_text(v) for v in items])  # refused by the server, as before
    return '"' + joined.replace("\\", "\\\\").replace('"', '\\"').replace("\x00", '","') + '"'


def _text(value: str) -> str:
    if '"' in value or "\\" in value:  # rare: ids, keys and codes need no escaping
        value = value.replace("\\", "\\\\").replace('"', '\\"')
    return '"' + value + '"'


_FORMATS: dict[type, Callable[[object], str]] = {
    UUID: str,
    int: str,
    str: _text,  # type: ignore[dict-item]
    bool: lambda value: "true" if value else "false",
    type(None): lambda _: "NULL",
}
"""The exact types met in practice, looked up at once; subclasses (an enum of strings)
go through `_element`."""


def _each(write: Callable[[object], str]) -> Callable[[list[Any]], str]:
    return lambda items: ",".join(map(write, items))


_WHOLE: dict[type, Callable[[list[Any]], str]] = {
    **{kind: _each(write) for kind, write in _FORMATS.items()},
    str: _texts,
}
"""The body of a literal whose elements are all of one of these exact types, written in
one pass: text escaped once for the whole list, the others as `_FORMATS` writes each."""


def _element(value: object) -> str:
    if value is None:
        return "NULL"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, UUID | int):  # bool, an int too, is handled above
        return str(value)
    if not isinstance(value, str):
        raise TypeError(f"no array literal for {type(value).__name__}")
    return _text(value)
