"""The text of ids, for values written on every request."""

from __future__ import annotations

from uuid import UUID

import orjson


def uuid_text(value: object) -> str:
    """`str(value)`: for a plain UUID its canonical hyphenated form, three times faster,
    because orjson writes it in C where `UUID.__str__` formats and slices its integer in
    Python; anything else (a UUID subclass, an id already text) through `str`."""
    if type(value) is UUID:
        return orjson.dumps(value)[1:-1].decode()
    return str(value)
