"""`rfc3339` is hashed into the audit chain: its text may never change."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from zoneinfo import ZoneInfo

from hypothesis import given
from hypothesis import strategies as st

from ledger_core.timestamps import rfc3339

OFFSETS = st.one_of(
    st.integers(min_value=-23 * 60, max_value=23 * 60).map(
        lambda minutes: timezone(timedelta(minutes=minutes))
    ),
    st.sampled_from([UTC, ZoneInfo("Etc/UTC"), ZoneInfo("UTC"), ZoneInfo("Europe/London")]),
)
"""Fixed offsets, zero among them, and the zones the database driver hands back."""
MOMENTS = st.datetimes(
    min_value=datetime(2, 1, 1), max_value=datetime(9998, 12, 31), timezones=OFFSETS
)


@given(MOMENTS)
def test_rfc3339_writes_what_strftime_wrote_for_every_year(moment: datetime) -> None:
    assert rfc3339(moment) == moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def test_rfc3339_has_a_fixed_width_from_year_1000() -> None:
    assert rfc3339(datetime(2026, 11, 24, 10, 15, 30, tzinfo=UTC)) == "2026-11-24T10:15:30.000000Z"


def test_an_hour_a_clock_turn_repeats_is_written_as_two_instants() -> None:
    """In one zone the two moments compare equal; one of them is at offset zero and is
    remembered, the other must still be converted."""
    london = ZoneInfo("Europe/London")
    at_zero = datetime(2026, 10, 25, 1, 30, fold=1, tzinfo=london)  # GMT
    summer = datetime(2026, 10, 25, 1, 30, fold=0, tzinfo=london)  # BST
    assert at_zero == summer
    assert rfc3339(at_zero) == "2026-10-25T01:30:00.000000Z"
    assert rfc3339(summer) == "2026-10-25T00:30:00.000000Z"
    assert rfc3339(at_zero) == "2026-10-25T01:30:00.000000Z"
