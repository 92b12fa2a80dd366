"""Timestamps at the edge: RFC 3339 in UTC with microseconds and a `Z`, always the same width."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

_NO_OFFSET = timedelta(0)


def rfc3339(moment: datetime) -> str:
    """Render an aware datetime as ``2026-11-24T10:15:30.123456Z``.

    `isoformat` in UTC ends in ``+00:00``, which becomes the ``Z``; it is a third faster than
    `strftime`. The audit chain hashes this text, so it must never change: before year 1000
    `strftime` writes the year unpadded, and those years keep it. A moment already at
    offset zero (what the database hands back, in a `zoneinfo` UTC) is written as it is:
    `astimezone` would give the same fields at three times the cost."""
    utc = moment if moment.utcoffset() == _NO_OFFSET else moment.astimezone(UTC)
    if utc.year < 1000:
        return utc.strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    return utc.isoformat(timespec="microseconds")[:-6] + "Z"


def rfc3339_or_none(moment: datetime | None) -> str | None:
    return None if moment is None else rfc3339(moment)
