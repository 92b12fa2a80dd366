"""Final notifications: what posting writes, every gateway reads back exactly."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta, timezone
from uuid import UUID

from hypothesis import given
from hypothesis import strategies as st

from ledger_core.final_notices import FinalState, id_chunks, read_payload, state_chunks
from ledger_core.timestamps import rfc3339

PAYLOAD_LIMIT = 8000
"""PostgreSQL refuses a NOTIFY payload of this many bytes or more."""
STATUSES = st.sampled_from(["COMPLETED", "HELD", "FAILED"])
MOMENTS = st.datetimes(
    min_value=datetime(1000, 1, 1),
    max_value=datetime(9999, 12, 31),
    timezones=st.sampled_from([UTC, timezone(timedelta(hours=-9, minutes=-30))]),
)


@given(st.lists(st.tuples(st.uuids(), STATUSES), min_size=1, max_size=400), MOMENTS)
def test_what_posting_writes_reads_back_as_each_transfer_and_its_state(
    decided: list[tuple[UUID, str]], at: datetime
) -> None:
    chunks = state_chunks(decided, at)
    read = [item for chunk in chunks for item in read_payload(chunk)]

    assert all(len(chunk.encode()) < PAYLOAD_LIMIT for chunk in chunks)
    assert [raw for raw, _ in read] == [str(i) for i, _ in decided]
    for (_, status), (_, final) in zip(decided, read, strict=True):
        if status == "FAILED":
            assert final is None  # its code and message are read from the row
        else:
            assert final == FinalState(status, at)
            assert final is not None and rfc3339(final.at) == rfc3339(at)


def test_a_full_chunk_of_the_longest_items_fits_a_payload() -> None:
    decided = [(uuid.uuid4(), "COMPLETED")] * 200
    at = datetime(2026, 12, 7, 23, 59, 59, 999999, tzinfo=timezone(timedelta(hours=-9)))
    [chunk] = state_chunks(decided, at)
    assert len(chunk.encode()) < PAYLOAD_LIMIT


@given(st.lists(st.tuples(st.uuids(), STATUSES), min_size=1, max_size=400), MOMENTS)
def test_a_reader_that_knows_only_ids_reads_the_same_ids(
    decided: list[tuple[UUID, str]], at: datetime
) -> None:
    """A gateway of an earlier release, during a rolling upgrade, skips what is not an id."""
    named = []
    for chunk in state_chunks(decided, at):
        for raw in chunk.split(","):
            try:
                named.append(UUID(raw))
            except ValueError:
                continue
    assert named == [i for i, _ in decided]


def test_plain_ids_and_unreadable_states_name_the_ids_alone() -> None:
    first, second = uuid.uuid4(), uuid.uuid4()
    alone = [(str(first), None), (str(second), None)]
    assert read_payload(",".join(id_chunks([first, second]))) == alone
    for states in ("=yesterday|CC", "=2026-12-07T10:00:00|CC", "=2026-12-07T10:00:00+00:00|C"):
        assert read_payload(f"{first},{second},{states}") == alone
    assert read_payload(f"{first},{second},=2026-12-07T10:00:00+00:00|-X") == alone


def test_a_state_applied_to_the_stored_row_is_the_row_posting_leaves() -> None:
    at = datetime(2026, 12, 7, 10, 0, tzinfo=UTC)
    stored = {
        "id": uuid.uuid4(),
        "status": "PENDING",
        "failure_code": None,
        "failure_message": None,
        "posted_at": None,
        "failed_at": None,
        "amount": 100,
    }

    completed = FinalState("COMPLETED", at).applied_to(stored)
    held = FinalState("HELD", at).applied_to(stored)

    assert completed == {**stored, "status": "COMPLETED", "posted_at": at}
    assert held == {**stored, "status": "HELD"}
    assert stored["status"] == "PENDING"
