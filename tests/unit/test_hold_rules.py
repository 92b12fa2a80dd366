"""Posting rules with holds and overdraft limits: reservations never over-spend, endings
release exactly what was held, and balances are conserved."""

from __future__ import annotations

import uuid
from dataclasses import replace
from datetime import UTC, datetime

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ledger_core.errors import CaptureExceedsHold, NotHeld
from ledger_core.holds import (
    ActionRequest,
    HoldAction,
    PendingAction,
    check_request,
    decide_actions,
    end_hold,
)
from ledger_core.posting import Leg, PendingTransfer, PostingPlan, WalletState, plan_postings

ORG = uuid.UUID(int=1)
NOW = datetime(2026, 1, 1, tzinfo=UTC)
SYSTEM = uuid.UUID(int=99)


def _transfer(
    seq: int, src: uuid.UUID, dst: uuid.UUID, amount: int, *, hold: bool
) -> PendingTransfer:
    return PendingTransfer(
        id=uuid.UUID(int=10_000 + seq),
        seq=seq,
        organization_id=ORG,
        destination_organization_id=ORG,
        kind="TRANSFER",
        source_wallet_id=src,
        destination_wallet_id=dst,
        amount=amount,
        currency="USD",
        created_at=NOW,
        hold_amount=amount if hold else None,
    )


def _wallet(n: int, balance: int, overdraft: int = 0, kind: str = "PRIMARY") -> WalletState:
    return WalletState(uuid.UUID(int=n), ORG, kind, "USD", "ACTIVE", balance, 0, overdraft)


def _assert_within_limits(wallets: dict[uuid.UUID, WalletState]) -> None:
    for wallet in wallets.values():
        if not wallet.may_go_negative:
            assert wallet.balance - wallet.held >= -wallet.overdraft_limit


def _plan_conserving(
    wallets: dict[uuid.UUID, WalletState], transfers: list[PendingTransfer]
) -> PostingPlan:
    """Plan the batch and check it moved money without creating any or breaking a limit."""
    total = sum(w.balance for w in wallets.values())
    plan = plan_postings(transfers, wallets)
    assert sum(w.balance for w in wallets.values()) == total
    _assert_within_limits(wallets)
    return plan


@st.composite
def scenarios(draw: st.DrawFn) -> tuple[dict[uuid.UUID, WalletState], list[PendingTransfer]]:
    n = draw(st.integers(min_value=2, max_value=5))
    wallets = {SYSTEM: _wallet(99, 0, kind="SYSTEM")}
    for i in range(n):
        balance = draw(st.integers(min_value=0, max_value=1_000))
        wallets[uuid.UUID(int=100 + i)] = _wallet(
            100 + i, balance, draw(st.sampled_from([0, 0, 50, 500]))
        )
    ids = list(wallets)
    transfers = []
    for seq in range(draw(st.integers(min_value=1, max_value=25))):
        src, dst = draw(st.permutations(ids))[:2]
        amount = draw(st.integers(min_value=1, max_value=800))
        transfers.append(_transfer(seq, src, dst, amount, hold=draw(st.booleans())))
    return wallets, transfers


@settings(max_examples=300, deadline=None)
@given(scenarios())
def test_holds_and_transfers_never_spend_past_the_overdraft_limit(
    scenario: tuple[dict[uuid.UUID, WalletState], list[PendingTransfer]],
) -> None:
    wallets, transfers = scenario
    plan = _plan_conserving(wallets, transfers)
    held = {o.transfer.id for o in plan.outcomes if o.status == "HELD"}
    for wallet in wallets.values():
        expected = sum(
            t.amount for t in transfers if t.id in held and t.source_wallet_id == wallet.id
        )
        assert wallet.held == expected
    assert not any(e.transaction_id in held for e in plan.entries)


@settings(max_examples=300, deadline=None)
@given(scenarios(), st.data())
def test_ending_every_hold_releases_it_and_conserves_balances(
    scenario: tuple[dict[uuid.UUID, WalletState], list[PendingTransfer]], data: st.DataObject
) -> None:
    wallets, transfers = scenario
    plan = plan_postings(transfers, wallets)
    total = sum(w.balance for w in wallets.values())
    for outcome in plan.outcomes:
        if outcome.status != "HELD":
            continue
        transfer = outcome.transfer
        amount = data.draw(st.one_of(st.none(), st.integers(1, transfer.amount)))
        entries = end_hold(transfer, amount, wallets)
        assert sum(e.amount for e in entries) == (0 if amount is None else 2 * amount)
    assert sum(w.balance for w in wallets.values()) == total
    for wallet in wallets.values():
        assert wallet.held == 0
        if not wallet.may_go_negative:
            assert wallet.balance >= -wallet.overdraft_limit


def test_a_hold_reserves_funds_that_a_later_transfer_cannot_spend() -> None:
    a, b = _wallet(1, 100), _wallet(2, 0)
    wallets = {a.id: a, b.id: b}
    hold = _transfer(1, a.id, b.id, 70, hold=True)
    spend = _transfer(2, a.id, b.id, 40, hold=False)
    plan = plan_postings([hold, spend], wallets)
    assert [o.status for o in plan.outcomes] == ["HELD", "FAILED"]
    assert plan.outcomes[1].failure_code == "insufficient_funds"
    assert (a.balance, a.held, plan.held[a.id], plan.balances[a.id]) == (100, 70, 70, 100)
    assert plan.entries == []


def test_an_overdraft_limit_lets_a_wallet_go_that_far_below_zero_and_no_further() -> None:
    a, b = _wallet(1, 10, overdraft=50), _wallet(2, 0)
    wallets = {a.id: a, b.id: b}
    plan = plan_postings(
        [_transfer(1, a.id, b.id, 60, hold=False), _transfer(2, a.id, b.id, 1, hold=False)],
        wallets,
    )
    assert [o.status for o in plan.outcomes] == ["COMPLETED", "FAILED"]
    assert a.balance == -50


def test_a_request_needs_a_held_hold_and_a_capture_within_it() -> None:
    tx = uuid.UUID(int=5)
    row = {"status": "HELD", "hold_amount": 500}
    check_request(row, ActionRequest(tx, HoldAction.CAPTURE, 500, "k"))
    with pytest.raises(CaptureExceedsHold):
        check_request(row, ActionRequest(tx, HoldAction.CAPTURE, 501, "k"))
    with pytest.raises(NotHeld):
        check_request(dict(row, status="VOIDED"), ActionRequest(tx, HoldAction.VOID, None, "k"))
    same = ActionRequest(tx, HoldAction.CAPTURE, 200, "k")
    assert same.request_hash() == replace(same, key="other").request_hash()
    assert same.request_hash() != replace(same, amount=None).request_hash()
    assert same.request_hash() != replace(same, transaction_id=uuid.UUID(int=6)).request_hash()


def _action(seq: int, hold: PendingTransfer, kind: HoldAction, amount: int | None) -> PendingAction:
    return PendingAction(
        uuid.UUID(int=50_000 + seq), seq, ORG, hold.id, kind, amount, f"k{seq}", "h"
    )


@settings(max_examples=300, deadline=None)
@given(st.data())
def test_actions_end_each_hold_once_and_conserve_balances(data: st.DataObject) -> None:
    wallets = {SYSTEM: _wallet(99, 0, kind="SYSTEM")}
    for i in range(3):
        wallets[uuid.UUID(int=100 + i)] = _wallet(100 + i, 1_000)
    ids = [uuid.UUID(int=100 + i) for i in range(3)]
    placed = [
        _transfer(n, ids[n % 3], ids[(n + 1) % 3], data.draw(st.integers(1, 300)), hold=True)
        for n in range(4)
    ]
    _plan_conserving(wallets, placed)
    total = sum(w.balance for w in wallets.values())
    actions = [
        _action(
            seq,
            hold := data.draw(st.sampled_from(placed)),
            kind := data.draw(st.sampled_from([HoldAction.CAPTURE, HoldAction.VOID])),
            None
            if kind is HoldAction.VOID
            else data.draw(st.none() | st.integers(1, (hold.hold_amount or 0) + 1)),
        )
        for seq in range(data.draw(st.integers(1, 10)))
    ]
    plan = decide_actions(actions, {h.id: (h, "HELD") for h in placed}, wallets)
    assert sum(w.balance for w in wallets.values()) == total
    _assert_within_limits(wallets)
    winners = [o for o in plan.outcomes if o.completed]
    assert len({o.action.transaction_id for o in winners}) == len(winners)
    done: set[uuid.UUID] = set()
    for o in plan.outcomes:
        hold_id = o.action.transaction_id
        if hold_id in done:
            assert (o.status, o.failure_code) == ("FAILED", "not_held")
        elif o.completed:
            done.add(hold_id)
        else:
            assert o.failure_code == "capture_exceeds_hold"
    ended = {o.action.transaction_id for o in winners}
    for wallet_id, wallet in wallets.items():
        still_held = sum(
            h.hold_amount or 0
            for h in placed
            if h.source_wallet_id == wallet_id and h.id not in ended
        )
        assert wallet.held == still_held
    captured = sum(o.captured or 0 for o in winners)
    assert sum(e.amount for e in plan.entries if e.direction == "DEBIT") == captured


@st.composite
def multi_scenarios(
    draw: st.DrawFn,
) -> tuple[dict[uuid.UUID, WalletState], list[PendingTransfer]]:
    wallets, transfers = draw(scenarios())
    ids = list(wallets)
    for seq in range(100, 100 + draw(st.integers(min_value=1, max_value=8))):
        legs = []
        for _ in range(draw(st.integers(min_value=1, max_value=4))):
            src, dst = draw(st.permutations(ids))[:2]
            legs.append(Leg(src, dst, draw(st.integers(min_value=1, max_value=600)), "USD"))
        first = legs[0]
        multi = replace(
            _transfer(seq, first.source_wallet_id, first.destination_wallet_id, 1, hold=False),
            kind="MULTI",
            amount=first.amount,
            postings=tuple(legs),
        )
        transfers.insert(draw(st.integers(0, len(transfers))), replace(multi, seq=seq))
    return wallets, sorted(transfers, key=lambda t: t.seq)


@settings(max_examples=300, deadline=None)
@given(multi_scenarios())
def test_multi_leg_transactions_post_whole_or_not_at_all(
    scenario: tuple[dict[uuid.UUID, WalletState], list[PendingTransfer]],
) -> None:
    wallets, transfers = scenario
    plan = _plan_conserving(wallets, transfers)
    for outcome in plan.outcomes:
        transfer = outcome.transfer
        if transfer.postings is None:
            continue
        entries = [e for e in plan.entries if e.transaction_id == transfer.id]
        if outcome.status == "COMPLETED":
            assert len(entries) == 2 * len(transfer.postings)
            debits = sum(e.amount for e in entries if e.direction == "DEBIT")
            assert debits == sum(leg.amount for leg in transfer.postings)
        else:
            assert entries == []
            assert outcome.failure_message is not None
            assert outcome.failure_message.startswith("posting ")
