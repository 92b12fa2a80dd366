"""What a posting batch adds to each wallet's counts of the day (`wallet_day_params`)."""

from __future__ import annotations

import uuid
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from ledger_core.persistence.analytics.rollups import wallet_day_params

ORG = uuid.uuid4()


def _transfer(
    source: uuid.UUID, destination: uuid.UUID, amount: int, status: str
) -> dict[str, Any]:
    return {
        "organization_id": ORG,
        "destination_organization_id": ORG,
        "source_wallet_id": source,
        "destination_wallet_id": destination,
        "currency": "USD",
        "amount": amount,
        "status": status,
        "postings": None,
    }


def _multi(legs: list[tuple[uuid.UUID, uuid.UUID, int]]) -> dict[str, Any]:
    """A multi-leg transaction as its row holds it: legs in JSON, ids and amounts as text."""
    row = _transfer(legs[0][0], legs[0][1], legs[0][2], "COMPLETED")
    row["postings"] = [
        {
            "source_wallet_id": str(source),
            "destination_wallet_id": str(destination),
            "amount": str(amount),
            "currency": "USD",
        }
        for source, destination, amount in legs
    ]
    return row


def _parsed(params: dict[str, str]) -> list[tuple[int, int, int, int]]:
    columns = [
        [int(x) for x in params[name].strip("{}").split(",")]
        for name in ("day_debits", "day_debit_volumes", "day_credits", "day_credit_volumes")
    ]
    return list(zip(*columns, strict=True))


def test_completed_transfers_and_every_leg_count_and_nothing_else_does() -> None:
    a, b, c, clearing = (uuid.uuid4() for _ in range(4))
    rows = [
        _transfer(a, b, 500, "COMPLETED"),
        _multi([(a, b, 100), (a, c, 250)]),
        _transfer(b, a, 9_999, "FAILED"),
        _transfer(c, a, 7_777, "HELD"),
    ]

    params = wallet_day_params(rows, [a, b, c, clearing])

    assert _parsed(params) == [
        (3, 850, 0, 0),  # a: three debits
        (0, 0, 2, 600),  # b: two credits
        (0, 0, 1, 250),  # c: one credit
        (0, 0, 0, 0),  # moved by the batch, no transfer of its own: nothing to add
    ]


@given(
    st.lists(
        st.tuples(st.integers(0, 4), st.integers(0, 4), st.integers(1, 10**15), st.booleans()),
        max_size=30,
    )
)
def test_debits_and_credits_balance_and_add_up_to_what_completed(
    moves: list[tuple[int, int, int, bool]],
) -> None:
    wallets = [uuid.uuid4() for _ in range(5)]
    rows = [
        _transfer(wallets[s], wallets[d], amount, "COMPLETED" if done else "FAILED")
        for s, d, amount, done in moves
        if s != d
    ]
    counted = _parsed(wallet_day_params(rows, wallets))
    completed = [r for r in rows if r["status"] == "COMPLETED"]
    assert sum(x[0] for x in counted) == sum(x[2] for x in counted) == len(completed)
    assert sum(x[1] for x in counted) == sum(x[3] for x in counted)
    assert sum(x[1] for x in counted) == sum(r["amount"] for r in completed)
