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

from collections.abc import Iterable
from uuid import UUID


def pg_array(values: Iterable[object]) -> str:
    """The array literal of `values` (UUIDs, integers, booleans, strings or None)."""
    return "{" + ",".join(map(_element, values)) + "}"


def _element(value: object) -> str:
    if value is None:
        return "NULL"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, UUID | int):  # bool, an int too, is handled above
        return str(value)
    if not isinstance(value, str):
        raise TypeError(f"no array literal for {type(value).__name__}")
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'
