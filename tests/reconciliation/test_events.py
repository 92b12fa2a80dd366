"""Drift events tell each organization about its own books only, in a bounded size."""

from __future__ import annotations

import uuid

import pytest

from ledger_core.reconciliation import (
    EVENT_DISCREPANCY_LIMIT,
    Discrepancy,
    Kind,
    Mode,
    drift_events,
)


def test_one_event_per_organization_with_only_its_discrepancies() -> None:
    run_id, acme, globex, wallet = uuid.uuid4(), uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
    found = [
        Discrepancy(Kind.BALANCE_MISMATCH, acme, wallet, currency="USD", expected=5, actual=7),
        Discrepancy(Kind.ORGANIZATION_SUM_NONZERO, acme, currency="USD", expected=0, actual=2),
        Discrepancy(Kind.STUCK_PENDING, globex, transaction_id=run_id, expected=0, actual=3),
        Discrepancy(Kind.LEDGER_SUM_NONZERO, None, currency="USD", expected=0, actual=2),
    ]

    events = dict(drift_events(run_id, Mode.FULL, found))

    assert set(events) == {acme, globex}
    assert [d["kind"] for d in events[acme]["discrepancies"]] == [
        "balance_mismatch",
        "organization_sum_nonzero",
    ]
    assert events[acme]["discrepancies"][0] == {
        "kind": "balance_mismatch",
        "organization_id": str(acme),
        "wallet_id": str(wallet),
        "transaction_id": None,
        "settlement_id": None,
        "entry_id": None,
        "currency": "USD",
        "expected": 5,
        "actual": 7,
    }
    assert events[globex] | {"discrepancies": []} == {
        "run_id": str(run_id),
        "mode": "FULL",
        "discrepancy_count": 1,
        "truncated": False,
        "discrepancies": [],
    }


def test_a_large_drift_is_summarised_not_listed_in_full() -> None:
    org = uuid.uuid4()
    found = [
        Discrepancy(Kind.OVERDRAFT, org, uuid.uuid4(), expected=0, actual=-1)
        for _ in range(EVENT_DISCREPANCY_LIMIT + 5)
    ]

    ((_, data),) = drift_events(uuid.uuid4(), Mode.INCREMENTAL, found)

    assert data["discrepancy_count"] == EVENT_DISCREPANCY_LIMIT + 5
    assert data["truncated"] is True
    assert len(data["discrepancies"]) == EVENT_DISCREPANCY_LIMIT


def test_no_discrepancy_no_event() -> None:
    assert drift_events(uuid.uuid4(), Mode.FULL, []) == []


@pytest.mark.parametrize(
    ("text", "mode"), [("full", Mode.FULL), (" Incremental ", Mode.INCREMENTAL)]
)
def test_modes_parse_from_any_case(text: str, mode: Mode) -> None:
    assert Mode.parse(text) is mode


def test_an_unknown_mode_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown reconciliation mode"):
        Mode.parse("partial")
