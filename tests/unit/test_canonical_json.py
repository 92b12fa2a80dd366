"""Canonical JSON and the audit record's canonical form: byte for byte what the standard
library writes, which every stored chain hash depends on."""

from __future__ import annotations

import json
import math
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from ledger_core import canonical_json
from ledger_core.audit_chain import AuditRecord, record_hash
from ledger_core.timestamps import rfc3339

_SPECIAL = st.sampled_from(
    ['"', "\\", "/", "\x00", "\x1f", "\x7f", "\u2028", "\u2029", "\ufeff", "\uffff", "\U0001f600"]
)
_TEXT = st.text(st.characters() | _SPECIAL | st.characters(max_codepoint=0x20), max_size=12)
_INTS = st.integers() | st.sampled_from([2**63 - 1, -(2**63), 2**64 - 1, 2**64, -(2**63) - 1])
_SCALARS = st.none() | st.booleans() | _INTS | st.floats() | _TEXT
_JSON = st.recursive(
    _SCALARS,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(_TEXT, inner, max_size=4),
    max_leaves=20,
)


def stdlib_canonical(value: object) -> bytes:
    """The chain's definition of canonical JSON."""
    text = json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return text.encode("utf-8")


def outcome(write: Any, value: object) -> bytes | type[BaseException]:
    try:
        written: bytes = write(value)
    except (TypeError, ValueError) as exc:  # UnicodeEncodeError for a lone surrogate
        return type(exc)
    return written


@settings(max_examples=1500)
@given(_JSON)
@example({"b": 1e16, "a": [1e-07, float("nan"), float("inf"), -0.0]})
@example({"\U0001f600": 1, "\uffff": 2, "\u2028": 3, "a\x00": 4, 'q"': 5, "\\": 6})
@example([2**64, -(2**63) - 1, 2**64 - 1, -(2**63), 10**400])
@example({"a": (1, 2), "b": True, "c": None})
def test_dumps_writes_what_the_standard_library_writes(value: object) -> None:
    assert outcome(canonical_json.dumps, value) == outcome(stdlib_canonical, value)


def _nested(depth: int) -> object:
    value: object = {"leaf": "x"}
    for level in range(depth):
        value = [value] if level % 2 else {"k": value}
    return value


@pytest.mark.parametrize("depth", [62, 63, 64, 65, 254, 255, 256, 300])
def test_deep_values_are_written_and_read_as_before(depth: int) -> None:
    value = _nested(depth)
    assert canonical_json.dumps(value) == stdlib_canonical(value)
    assert canonical_json.loads(json.dumps(value)) == value


@given(st.characters(min_codepoint=0xD800, max_codepoint=0xDFFF), _TEXT)
def test_a_lone_surrogate_is_refused_as_before(surrogate: str, rest: str) -> None:
    value = {"details": [rest + surrogate]}
    assert outcome(canonical_json.dumps, value) == outcome(stdlib_canonical, value)


@pytest.mark.parametrize(
    "value",
    [
        {1: "int key"},
        {"a": {True: 1}},
        {"a": {None: 1}},
        {"a": {1.5: 1}},
        {"mixed": {"b": 1, 2: 2}},
    ],
)
def test_keys_that_are_not_strings_are_written_as_before(value: object) -> None:
    assert outcome(canonical_json.dumps, value) == outcome(stdlib_canonical, value)


def test_subclasses_and_other_types_are_written_or_refused_as_before() -> None:
    class Text(str):
        pass

    class Number(int):
        pass

    class Mapping(dict[str, object]):
        pass

    cases = [
        Text("a"),
        {"a": Number(5)},
        Mapping(b=1, a=2),
        {"when": datetime(2026, 1, 1, tzinfo=UTC)},
        {"id": __import__("uuid").UUID(int=1)},
    ]
    for value in cases:
        assert outcome(canonical_json.dumps, value) == outcome(stdlib_canonical, value)


def _json_texts(value: object) -> list[str]:
    """`value` as PostgreSQL's jsonb output writes it, and in other layouts."""
    return [
        json.dumps(value),
        json.dumps(value, ensure_ascii=False),
        json.dumps(value, separators=(",", ":"), ensure_ascii=False),
    ]


@settings(max_examples=1000)
@given(_JSON)
@example({"big": 2**64, "small": -(2**63) - 1, "huge": 10**400, "top": 2**64 - 1})
@example({"f": 1.0, "z": -0.0, "e": 1e-7, "inf": float("inf"), "nan": float("nan")})
def test_loads_reads_what_the_standard_library_reads(value: object) -> None:
    for text in _json_texts(value):
        try:
            expected = json.loads(text)
        except ValueError:
            continue
        got = canonical_json.loads(text)
        assert type(got) is type(expected)
        assert outcome(stdlib_canonical, got) == outcome(stdlib_canonical, expected)


@pytest.mark.parametrize("text", ["-0", "1E2", "[1.0]", '"\\ud800"', '{"a": 1, "a": 2}', "1" * 30])
def test_loads_reads_odd_numbers_and_escapes_as_before(text: str) -> None:
    got, expected = canonical_json.loads(text), json.loads(text)
    assert type(got) is type(expected)
    assert repr(got) == repr(expected) or (math.isnan(got) and math.isnan(expected))


_OFFSETS = st.integers(min_value=-23 * 60 - 59, max_value=23 * 60 + 59).map(
    lambda minutes: timezone(timedelta(minutes=minutes))
)
_MOMENTS = st.datetimes(
    min_value=datetime(1, 1, 2), max_value=datetime(9999, 12, 30), timezones=_OFFSETS
)
_OPTIONAL = st.none() | _TEXT


def old_canonical(record: AuditRecord, chain_seq: int) -> bytes:
    """The canonical form as the chain has always written it."""
    body = {
        "id": record.id,
        "chain_seq": chain_seq,
        "organization_id": record.organization_id,
        "actor_id": record.actor_id,
        "action": record.action,
        "resource_type": record.resource_type,
        "resource_id": record.resource_id,
        "client_address": record.client_address,
        "user_agent": record.user_agent,
        "request_id": record.request_id,
        "details": record.details,
        "created_at": rfc3339(record.created_at),
    }
    return stdlib_canonical(body)


@settings(max_examples=1000)
@given(
    record=st.builds(
        AuditRecord,
        id=st.integers(min_value=1, max_value=2**63 - 1),
        organization_id=st.none() | st.uuids().map(str),
        actor_id=st.none() | st.uuids().map(str),
        action=_TEXT,
        resource_type=_OPTIONAL,
        resource_id=_OPTIONAL,
        client_address=_OPTIONAL,
        user_agent=_OPTIONAL,
        request_id=_OPTIONAL,
        details=st.dictionaries(_TEXT, _JSON, max_size=5),
        created_at=_MOMENTS,
    ),
    chain_seq=st.integers(min_value=1, max_value=2**63 - 1),
)
@example(
    record=AuditRecord(
        7, None, None, "a", None, None, None, None, None, {}, datetime(999, 12, 31, 23, tzinfo=UTC)
    ),
    chain_seq=1,
)
@example(
    record=AuditRecord(
        8, None, None, "a", None, None, None, None, None, {},
        datetime(1000, 1, 1, 1, tzinfo=timezone(timedelta(hours=2))),
    ),
    chain_seq=1,
)  # fmt: skip
def test_a_record_is_written_as_the_chain_always_wrote_it(
    record: AuditRecord, chain_seq: int
) -> None:
    """Timestamps included: any year, any offset, with and without microseconds."""
    assert outcome(lambda r: r.canonical(chain_seq), record) == outcome(
        lambda r: old_canonical(r, chain_seq), record
    )


@pytest.mark.parametrize(
    ("details", "known_hash"),
    [
        (
            {"amount": "12.50", "kind": "TRANSFER"},
            "42ffc559103026a76eb194dd68bf7d6df8ba955ff11626b859f1ed50f101f61c",
        ),
        (
            {"amount": "12.50", "n": 2**70, "f": 1e16, "z": [None, True, "\x01"]},
            "bf4ea9f81cb447467065f96b18bb0b802d34f9fc2f912ea8ff3565590fcf1c46",
        ),
    ],
)
def test_a_known_record_keeps_its_hash(details: dict[str, Any], known_hash: str) -> None:
    """Hashes computed before orjson wrote the canonical form (by orjson, then by json)."""
    record = AuditRecord(
        id=42,
        organization_id="5f0c3c2e-8f6c-4b8e-9a37-2f1b7f0c9d11",
        actor_id=None,
        action="transfer.created",
        resource_type="transaction",
        resource_id="0193a5b4-7c1e-7d2a-9f00-1234567890ab",
        client_address="127.0.0.1",
        user_agent="ua/1 \u2028 \U0001f600",
        request_id='req "1" \\',
        details=details,
        created_at=datetime(2026, 12, 5, 3, 40, 0, 0, tzinfo=UTC),
    )
    assert record_hash("0" * 64, record, 3) == known_hash
