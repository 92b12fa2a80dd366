"""Canonical JSON, the bytes the audit chain hashes: written by orjson, identical to json's.

The chain's definition is the standard library's `json.dumps(value, sort_keys=True,
separators=(",", ":"), ensure_ascii=False)` encoded as UTF-8, and every hash already stored
depends on it. orjson writes the same bytes several times faster for the plain values
(dicts with string keys, lists, strings, booleans, None and integers of at most 64 bits):
it escapes the same characters the same way, and its sorted keys follow code points as
Python's do. It differs elsewhere: floats (`1e16` where json writes `1e+16`, `null` for
NaN), integers beyond 64 bits (refused, or read as floats), tuples, subclasses, UUIDs and
datetimes (written where json refuses them). So `dumps` and `loads` check that a value is
plain, all the way down, and hand anything else to `json`.
"""

from __future__ import annotations

import json
from typing import Any

import orjson

_INT_MIN = -(1 << 63)
_INT_MAX = (1 << 64) - 1
"""The integers orjson writes: signed and unsigned 64-bit."""

_MAX_DEPTH = 64
"""Deeper values go through json (orjson refuses nesting past 255 levels)."""


def dumps(value: object) -> bytes:
    """`value` as canonical JSON in UTF-8."""
    if _plain(value, _MAX_DEPTH):
        try:
            return orjson.dumps(value, option=orjson.OPT_SORT_KEYS)
        except orjson.JSONEncodeError:  # a lone surrogate, which json cannot encode either
            pass
    text = json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return text.encode("utf-8")


def loads(text: str | bytes) -> Any:
    """The value `json.loads(text)` reads, read by orjson whenever that gives the same value.

    orjson reads a number beyond 64 bits as a float (or refuses it): any value not plain
    is read again by json.
    """
    try:
        value = orjson.loads(text)
    except orjson.JSONDecodeError:
        return json.loads(text)
    return value if _plain(value, _MAX_DEPTH) else json.loads(text)


def _plain(value: object, depth: int) -> bool:
    """Whether orjson writes `value` exactly as json does (strings are checked by writing)."""
    if type(value) is str or type(value) is bool or value is None:
        return True
    if type(value) is int:
        return _INT_MIN <= value <= _INT_MAX
    if depth == 0:
        return False
    if type(value) is dict:
        for key, item in value.items():
            if type(key) is not str or (type(item) is not str and not _plain(item, depth - 1)):
                return False
        return True
    if type(value) is list:
        return all(type(item) is str or _plain(item, depth - 1) for item in value)
    return False
