"""Timestamps at the edge: RFC 3339 in UTC with microseconds and a `Z`, always the same width."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from functools import lru_cache

_NO_OFFSET = timedelta(0)


def rfc3339(moment: datetime) -> str:
    """Render an aware datetime as ``2026-11-24T10:15:30.123456Z``.

    The audit chain hashes this text, so it must never change. A moment at offset zero
    (what the database hands back, in a `zoneinfo` UTC) is rendered as it is, and the last
    few thousand are remembered: the rows of one intake group share their `created_at`,
    those of one posting batch their `posted_at`, and rendering costs about five times a
    lookup. Any other moment is converted to UTC first."""
    if moment.utcoffset() == _NO_OFFSET:
        return _zero_offset_text(moment)
    return _utc_text(moment.astimezone(UTC))


@lru_cache(maxsize=4096)
def _zero_offset_text(moment: datetime) -> str:
    """`_utc_text` of a moment at offset zero. Keys that compare equal are one instant:
    moments in one zone compare by wall time, so the two moments of an hour that a clock
    turn repeats compare equal, but only the one at offset zero ever reaches this cache."""
    return _utc_text(moment)


def _utc_text(utc: datetime) -> str:
    """`isoformat` at offset zero ends in ``+00:00``, which becomes the ``Z``; it is a third
    faster than `strftime`. Before year 1000 `strftime` writes the year unpadded, and those
    years keep it."""
    if utc.year < 1000:
        return utc.strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    return utc.isoformat(timespec="microseconds")[:-6] + "Z"


def rfc3339_or_none(moment: datetime | None) -> str | None:
    return None if moment is None else rfc3339(moment)
