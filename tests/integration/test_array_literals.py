"""Array literals read back by real PostgreSQL exactly as the values they were built from."""

from __future__ import annotations

import uuid

from hypothesis import given, settings
from hypothesis import strategies as st
from sqlalchemy import Engine, text

from ledger_core.persistence.arrays import pg_array, pg_uuid_array

_TEXT = st.text(st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00"))


@settings(max_examples=60, deadline=None)
@given(values=st.lists(st.one_of(st.none(), _TEXT), max_size=20))
def test_text_arrays_round_trip(engine: Engine, values: list[str | None]) -> None:
    with engine.connect() as conn:
        got = conn.execute(text("SELECT CAST(:a AS text[])"), {"a": pg_array(values)}).scalar_one()
    assert got == values


@settings(max_examples=30, deadline=None)
@given(
    ids=st.lists(st.one_of(st.none(), st.uuids()), max_size=20),
    numbers=st.lists(st.one_of(st.none(), st.integers(-(2**63), 2**63 - 1)), max_size=20),
    flags=st.lists(st.one_of(st.none(), st.booleans()), max_size=20),
)
def test_uuid_bigint_and_boolean_arrays_round_trip(
    engine: Engine,
    ids: list[uuid.UUID | None],
    numbers: list[int | None],
    flags: list[bool | None],
) -> None:
    with engine.connect() as conn:
        got_ids, got_numbers, got_flags = conn.execute(
            text("SELECT CAST(:i AS uuid[]), CAST(:n AS bigint[]), CAST(:f AS boolean[])"),
            {"i": pg_array(ids), "n": pg_array(numbers), "f": pg_array(flags)},
        ).one()
    assert got_ids == ids
    assert got_numbers == numbers
    assert got_flags == flags


@settings(max_examples=30, deadline=None)
@given(ids=st.lists(st.one_of(st.none(), st.uuids()), max_size=20), as_text=st.booleans())
def test_uuid_arrays_in_hex_round_trip(
    engine: Engine, ids: list[uuid.UUID | None], as_text: bool
) -> None:
    """`pg_uuid_array` writes UUIDs as bare hex digits and takes their text form too (the
    legs of a multi-leg transaction come from JSON): PostgreSQL reads back the same ids."""
    values = [str(i) if as_text and i is not None else i for i in ids]
    with engine.connect() as conn:
        got = conn.execute(
            text("SELECT CAST(:i AS uuid[])"), {"i": pg_uuid_array(values)}
        ).scalar_one()
    assert got == ids
