"""Analytics time ranges and series: pure helpers behind the dashboard's JSON.

A range is bounded (at most `MAX_RANGE`, 24 hours by default) and cut into buckets of a
minute, an hour or a day, chosen so a chart has at most `MAX_BUCKETS` points. Series are
filled with zeros where nothing happened, so every chart has one point per bucket.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from ledger_core.errors import DomainError
from ledger_core.money import format_amount
from ledger_core.timestamps import rfc3339

DEFAULT_RANGE = timedelta(hours=24)
MAX_RANGE = timedelta(days=31)
MAX_BUCKETS = 1500
BUCKETS: Mapping[str, timedelta] = {
    "minute": timedelta(minutes=1),
    "hour": timedelta(hours=1),
    "day": timedelta(days=1),
}
STATUSES = ("COMPLETED", "FAILED", "CANCELLED", "VOIDED", "EXPIRED")


class InvalidRange(DomainError):
    code = "validation_error"


@dataclass(frozen=True)
class TimeRange:
    start: datetime
    end: datetime
    bucket: str

    @property
    def step(self) -> timedelta:
        return BUCKETS[self.bucket]

    def bucket_starts(self) -> list[datetime]:
        """Every bucket of the range, oldest first, aligned to UTC minute/hour/day."""
        first = truncate(self.start, self.bucket)
        return [first + self.step * n for n in range(int((self.end - first) / self.step) + 1)]


def truncate(moment: datetime, bucket: str) -> datetime:
    moment = moment.astimezone(UTC).replace(second=0, microsecond=0)
    if bucket in ("hour", "day"):
        moment = moment.replace(minute=0)
    if bucket == "day":
        moment = moment.replace(hour=0)
    return moment


def time_range(
    start: datetime | None, end: datetime | None, bucket: str | None, now: datetime
) -> TimeRange:
    """The range asked for, defaulting to the last 24 hours and a fitting bucket."""
    end = now if end is None else end
    start = end - DEFAULT_RANGE if start is None else start
    if start >= end:
        raise InvalidRange("from must be before to", field="from")
    if end - start > MAX_RANGE:
        raise InvalidRange("the range may span at most 31 days", field="from")
    if bucket is None:
        bucket = next(b for b, step in BUCKETS.items() if (end - start) / step <= MAX_BUCKETS / 4)
    if (end - start) / BUCKETS[bucket] > MAX_BUCKETS:
        raise InvalidRange(f"{bucket} buckets are too fine for this range", field="bucket")
    return TimeRange(start, end, bucket)


@dataclass
class Point:
    count: int = 0
    by_status: dict[str, int] = field(default_factory=lambda: dict.fromkeys(STATUSES, 0))
    completed_volume: int = 0


def series(
    rows: Iterable[tuple[str, datetime, str, int, int]], window: TimeRange
) -> list[dict[str, Any]]:
    """Per currency, one point per bucket from `(currency, bucket, status, count, volume)`."""
    by_currency: dict[str, dict[datetime, Point]] = {}
    for currency, moment, status, count, volume in rows:
        point = by_currency.setdefault(currency, {}).setdefault(moment.astimezone(UTC), Point())
        point.count += int(count)
        point.by_status[status] = point.by_status.get(status, 0) + int(count)
        if status == "COMPLETED":
            point.completed_volume += int(volume)
    out = []
    for currency in sorted(by_currency):
        points = by_currency[currency]
        out.append(
            {
                "currency": currency,
                "points": [
                    _point(moment, points.get(moment, Point()), currency)
                    for moment in window.bucket_starts()
                ],
            }
        )
    return out


def _point(moment: datetime, point: Point, currency: str) -> dict[str, Any]:
    return {
        "t": rfc3339(moment),
        "count": point.count,
        "by_status": point.by_status,
        "volume": format_amount(point.completed_volume, currency),
    }
