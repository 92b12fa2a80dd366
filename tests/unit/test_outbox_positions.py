"""Which visible outbox events a relay batch may publish (`publishable`)."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from ledger_core.persistence.events.outbox_relay import ClaimedEvent, publishable


def _events(ids: list[int]) -> list[ClaimedEvent]:
    return [ClaimedEvent(i, f"e{i}", "org", "wallet.status_changed", "{}") for i in ids]


@given(
    after=st.integers(min_value=0, max_value=50),
    visible=st.sets(st.integers(min_value=1, max_value=120), max_size=60),
    settled=st.integers(min_value=0, max_value=130),
)
def test_a_batch_never_passes_an_id_it_cannot_see_unless_that_id_is_settled(
    after: int, visible: set[int], settled: int
) -> None:
    events = _events(sorted(i for i in visible if i > after))
    taken = publishable(events, after, settled)

    assert taken == events[: len(taken)]  # a prefix, in id order
    accounted = max(after, settled)  # every id up to here is published or gone for good
    for event in taken:  # each one within what is accounted for, or the very next id
        assert event.outbox_id <= accounted + 1
        accounted = max(accounted, event.outbox_id)
    if len(taken) < len(events):  # it stopped only at an id it may not pass
        assert events[len(taken)].outbox_id > accounted + 1


def test_a_gap_is_passed_once_it_is_settled() -> None:
    events = _events([3, 4, 7, 8, 12])
    assert [e.outbox_id for e in publishable(events, 2, 0)] == [3, 4]
    assert [e.outbox_id for e in publishable(events, 2, 7)] == [3, 4, 7, 8]
    assert [e.outbox_id for e in publishable(events, 2, 12)] == [3, 4, 7, 8, 12]
    assert [e.outbox_id for e in publishable(events, 2, 6)] == [3, 4, 7, 8]  # 5, 6 are gone
    assert [e.outbox_id for e in publishable(events, 2, 11)] == [3, 4, 7, 8, 12]
    assert publishable(events, 1, 0) == []
