"""The netting rules alone: direction, gross amounts, window, and the legs that settle."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import pytest

from ledger_core.posting import CREDIT, DEBIT
from ledger_core.settlement import (
    CrossOrgTransfer,
    PairWallets,
    expected_clearing_balance,
    net_transfers,
    settlement_legs,
)

A, B = sorted([uuid.uuid4(), uuid.uuid4()])
T0 = datetime(2026, 11, 24, 10, 0, tzinfo=UTC)


def move(payer: uuid.UUID, payee: uuid.UUID, amount: int, minutes: int = 0) -> CrossOrgTransfer:
    return CrossOrgTransfer(uuid.uuid4(), payer, payee, amount, T0 + timedelta(minutes=minutes))


def test_60_one_way_and_15_back_net_to_45_owed_by_the_larger_sender() -> None:
    n = net_transfers(B, A, [move(B, A, 15_00, 5), move(A, B, 60_00, 1)])
    assert (n.payer_organization_id, n.payee_organization_id) == (A, B)
    assert (n.gross_payer_to_payee, n.gross_payee_to_payer, n.net_amount) == (60_00, 15_00, 45_00)
    assert (n.transfer_count, n.window_start, n.window_end) == (
        2,
        T0 + timedelta(minutes=1),
        T0 + timedelta(minutes=5),
    )


def test_the_other_direction_makes_the_other_payer() -> None:
    n = net_transfers(A, B, [move(B, A, 7), move(B, A, 3), move(A, B, 4)])
    assert (n.payer_organization_id, n.net_amount) == (B, 6)
    assert (n.gross_payer_to_payee, n.gross_payee_to_payer) == (10, 4)


def test_equal_flows_net_to_zero_with_the_smaller_id_as_payer() -> None:
    for first, second in ((A, B), (B, A)):
        n = net_transfers(first, second, [move(A, B, 5), move(B, A, 5)])
        assert (n.payer_organization_id, n.net_amount) == (A, 0)


def test_transfers_of_another_pair_or_none_at_all_are_refused() -> None:
    with pytest.raises(ValueError, match="not between"):
        net_transfers(A, B, [move(A, uuid.uuid4(), 1)])
    with pytest.raises(ValueError, match="nothing to net"):
        net_transfers(A, B, [])


def test_legs_zero_both_clearing_wallets_and_balance_each_book() -> None:
    n = net_transfers(A, B, [move(A, B, 60_00), move(B, A, 15_00)])
    w = PairWallets(*(uuid.uuid4() for _ in range(4)))
    balances = {
        w.payer_clearing: expected_clearing_balance(n, payer_side=True),
        w.payee_clearing: expected_clearing_balance(n, payer_side=False),
        w.payer_system: -100_00,
        w.payee_system: -100_00,
    }
    owner = {w.payer_clearing: A, w.payer_system: A, w.payee_clearing: B, w.payee_system: B}
    per_org = {A: 0, B: 0}
    for wallet, direction in settlement_legs(n, w):
        signed = n.net_amount if direction == CREDIT else -n.net_amount
        balances[wallet] += signed
        per_org[owner[wallet]] += signed
    assert balances[w.payer_clearing] == 0 == balances[w.payee_clearing]
    assert per_org == {A: 0, B: 0}
    assert (balances[w.payer_system], balances[w.payee_system]) == (-55_00, -145_00)
    assert {d for _, d in settlement_legs(n, w)} == {CREDIT, DEBIT}


def test_nothing_moves_at_zero() -> None:
    n = net_transfers(A, B, [move(A, B, 5), move(B, A, 5)])
    assert settlement_legs(n, PairWallets(*(uuid.uuid4() for _ in range(4)))) == ()
