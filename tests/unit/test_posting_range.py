"""Posting rules: a result past the signed 64-bit range fails alone, before any write."""

from __future__ import annotations

import uuid

from hypothesis import given, settings
from hypothesis import strategies as st

from ledger_core.money import MAX_MINOR_UNITS
from ledger_core.posting import MIN_MINOR_UNITS, PendingTransfer, WalletState, plan_postings
from tests.support.postings import pending_transfer, wallet_states

SYSTEM, PRIMARY, OTHER = (uuid.UUID(int=100 + i) for i in range(3))


def _system_and_primaries(system_balance: int = 0) -> dict[uuid.UUID, WalletState]:
    return wallet_states([system_balance, 0, 0], ["SYSTEM", "PRIMARY", "PRIMARY"])


def test_two_maximal_deposits_from_system_fail_the_second_alone() -> None:
    """The attack: the second max deposit would take SYSTEM below -2**63; it alone fails."""
    wallets = _system_and_primaries()
    first = pending_transfer(1, SYSTEM, PRIMARY, MAX_MINOR_UNITS)
    second = pending_transfer(2, SYSTEM, OTHER, MAX_MINOR_UNITS)
    small = pending_transfer(3, SYSTEM, OTHER, 5)

    plan = plan_postings([first, second, small], wallets)

    fates = {o.transfer.id: (o.status, o.failure_code) for o in plan.outcomes}
    assert fates[first.id] == ("COMPLETED", None)
    assert fates[second.id] == ("FAILED", "amount_out_of_range")
    assert fates[small.id] == ("FAILED", "amount_out_of_range")
    assert wallets[SYSTEM].balance == -MAX_MINOR_UNITS
    assert wallets[OTHER].balance == 0
    assert all(MIN_MINOR_UNITS <= e.balance_after <= MAX_MINOR_UNITS for e in plan.entries)


def test_a_credit_past_the_maximum_fails_and_the_rest_posts() -> None:
    """A credit that would take a wallet past 2**63-1 fails; an unrelated transfer posts."""
    wallets = wallet_states([0, MAX_MINOR_UNITS - 10, 50], ["SYSTEM", "PRIMARY", "PRIMARY"])
    over = pending_transfer(1, SYSTEM, PRIMARY, 11)
    fine = pending_transfer(2, OTHER, SYSTEM, 50)

    plan = plan_postings([over, fine], wallets)

    assert [(o.status, o.failure_code) for o in plan.outcomes] == [
        ("FAILED", "amount_out_of_range"),
        ("COMPLETED", None),
    ]
    assert wallets[PRIMARY].balance == MAX_MINOR_UNITS - 10


def test_an_atomic_batch_with_an_out_of_range_member_fails_whole() -> None:
    """One member past the range fails the batch; its siblings fail as atomic_batch_failed."""
    wallets = _system_and_primaries(-MAX_MINOR_UNITS)
    group = uuid.uuid4()
    sibling = pending_transfer(1, SYSTEM, PRIMARY, 1, group)
    culprit = pending_transfer(2, SYSTEM, OTHER, 2, group)

    plan = plan_postings([sibling, culprit], wallets)

    assert [(o.status, o.failure_code) for o in plan.outcomes] == [
        ("FAILED", "atomic_batch_failed"),
        ("FAILED", "amount_out_of_range"),
    ]
    assert wallets[SYSTEM].balance == -MAX_MINOR_UNITS
    assert plan.entries == []


big = st.integers(min_value=1, max_value=MAX_MINOR_UNITS)


@st.composite
def huge_batches(draw: st.DrawFn) -> tuple[dict[uuid.UUID, WalletState], list[PendingTransfer]]:
    types = ["SYSTEM", "SYSTEM", "PRIMARY", "PRIMARY"]
    balances = [draw(st.integers(MIN_MINOR_UNITS, MAX_MINOR_UNITS)) for _ in types[:2]]
    balances += [draw(st.integers(0, MAX_MINOR_UNITS)) for _ in types[2:]]
    wallets = wallet_states(balances, types)
    ids = list(wallets)
    transfers = []
    for seq in range(draw(st.integers(min_value=1, max_value=12))):
        src, dst = draw(st.permutations(ids))[:2]
        group = draw(st.sampled_from([None, None, uuid.UUID(int=7)]))
        transfers.append(pending_transfer(seq, src, dst, draw(big), group))
    return wallets, transfers


@settings(max_examples=400)
@given(huge_batches())
def test_no_plan_holds_a_result_past_64_bits(
    scenario: tuple[dict[uuid.UUID, WalletState], list[PendingTransfer]],
) -> None:
    """Whatever the amounts: every written balance fits, each failure says why, the rest posts."""
    wallets, transfers = scenario
    before = {w.id: w.balance for w in wallets.values()}

    plan = plan_postings(transfers, wallets)

    assert all(MIN_MINOR_UNITS <= e.balance_after <= MAX_MINOR_UNITS for e in plan.entries)
    assert all(MIN_MINOR_UNITS <= b <= MAX_MINOR_UNITS for b in plan.balances.values())
    for outcome in plan.outcomes:
        assert outcome.completed or outcome.failure_code in {
            "amount_out_of_range",
            "insufficient_funds",
            "atomic_batch_failed",
        }
    net = dict(before)
    for entry in plan.entries:
        net[entry.wallet_id] += entry.amount if entry.direction == "CREDIT" else -entry.amount
    assert all(wallets[w].balance == net[w] for w in wallets)
    singles = [o for o in plan.outcomes if o.transfer.atomic_group_id is None]
    for outcome in singles:
        if outcome.failure_code == "amount_out_of_range":
            assert not any(e.transaction_id == outcome.transfer.id for e in plan.entries)
