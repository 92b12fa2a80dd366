"""Posting rules: balanced entries, running balances, no overdraft, atomic batches."""

from __future__ import annotations

import uuid
from collections import defaultdict

from hypothesis import given, settings
from hypothesis import strategies as st

from ledger_core.posting import (
    CREDIT,
    DEBIT,
    PendingTransfer,
    WalletState,
    plan_postings,
)
from tests.support.postings import NOW, pending_transfer, wallet_states

wallet_count = st.integers(min_value=2, max_value=6)


@st.composite
def scenarios(draw: st.DrawFn) -> tuple[dict[uuid.UUID, WalletState], list[PendingTransfer]]:
    n = draw(wallet_count)
    types = draw(st.lists(st.sampled_from(["PRIMARY", "BONUS", "SYSTEM"]), min_size=n, max_size=n))
    balances = [
        draw(st.integers(min_value=0, max_value=1_000)) if t != "SYSTEM" else 0 for t in types
    ]
    wallets = wallet_states(balances, types)
    ids = list(wallets)
    transfers = []
    for seq in range(draw(st.integers(min_value=0, max_value=30))):
        src, dst = draw(st.permutations(ids))[:2]
        transfers.append(
            pending_transfer(seq, src, dst, draw(st.integers(min_value=1, max_value=500)))
        )
    return wallets, transfers


@settings(max_examples=300)
@given(scenarios())
def test_postings_balance_and_never_overdraw(
    scenario: tuple[dict[uuid.UUID, WalletState], list[PendingTransfer]],
) -> None:
    """Whatever the sequence: entries balance, history explains balances, nothing overdraws."""
    wallets, transfers = scenario
    before = {w.id: w.balance for w in wallets.values()}
    plan = plan_postings(transfers, wallets)

    assert [o.transfer.id for o in plan.outcomes] == [t.id for t in transfers]
    debits = sum(e.amount for e in plan.entries if e.direction == DEBIT)
    credits = sum(e.amount for e in plan.entries if e.direction == CREDIT)
    assert debits == credits

    running = dict(before)
    for entry in plan.entries:
        running[entry.wallet_id] += entry.amount if entry.direction == CREDIT else -entry.amount
        assert entry.balance_after == running[entry.wallet_id]
    for wallet in wallets.values():
        assert wallet.balance == running[wallet.id]
        if wallet.type != "SYSTEM":
            assert wallet.balance >= 0
    assert sum(w.balance for w in wallets.values()) == sum(before.values())
    assert plan.balances == {wid: running[wid] for wid in plan.balances}


@settings(max_examples=200)
@given(scenarios())
def test_a_refused_transfer_moves_nothing(
    scenario: tuple[dict[uuid.UUID, WalletState], list[PendingTransfer]],
) -> None:
    wallets, transfers = scenario
    plan = plan_postings(transfers, wallets)
    moved = defaultdict(int)
    for entry in plan.entries:
        moved[entry.transaction_id] += 1
    for outcome in plan.outcomes:
        assert moved[outcome.transfer.id] == (2 if outcome.completed else 0)
        if not outcome.completed:
            assert outcome.failure_code == "insufficient_funds"


def test_transfers_apply_in_submission_order() -> None:
    """A later transfer sees the balance an earlier one left, whatever order they arrive in."""
    wallets = wallet_states([100, 0], ["PRIMARY", "PRIMARY"])
    a, b = list(wallets)
    plan = plan_postings([pending_transfer(2, a, b, 60), pending_transfer(1, a, b, 60)], wallets)
    assert [(o.transfer.seq, o.status) for o in plan.outcomes] == [(1, "COMPLETED"), (2, "FAILED")]


def test_an_atomic_batch_fails_whole_and_restores_balances() -> None:
    wallets = wallet_states([100, 0, 0], ["PRIMARY", "PRIMARY", "PRIMARY"])
    a, b, c = list(wallets)
    group = uuid.UUID(int=10_000)
    plan = plan_postings(
        [
            pending_transfer(0, a, b, 70, group),
            pending_transfer(1, a, c, 70, group),
            pending_transfer(2, a, c, 30),
        ],
        wallets,
    )
    codes = [(o.status, o.failure_code) for o in plan.outcomes]
    assert codes == [
        ("FAILED", "atomic_batch_failed"),
        ("FAILED", "insufficient_funds"),
        ("COMPLETED", None),
    ]
    assert (wallets[a].balance, wallets[b].balance, wallets[c].balance) == (70, 0, 30)
    assert len(plan.entries) == 2


def test_inactive_wallets_refuse_transfers() -> None:
    wallets = wallet_states([100, 0], ["PRIMARY", "PRIMARY"])
    a, b = list(wallets)
    wallets[b].status = "LOCKED"
    plan = plan_postings([pending_transfer(0, a, b, 10)], wallets)
    assert plan.outcomes[0].failure_code == "wallet_not_active"
    assert wallets[a].balance == 100


def test_cross_org_transfer_balances_in_each_book() -> None:
    payer, payee = uuid.UUID(int=1), uuid.UUID(int=2)
    ids = [uuid.UUID(int=200 + i) for i in range(4)]
    wallets = {
        ids[0]: WalletState(ids[0], payer, "PRIMARY", "USD", "ACTIVE", 100),
        ids[1]: WalletState(ids[1], payer, "CLEARING", "USD", "ACTIVE", 0),
        ids[2]: WalletState(ids[2], payee, "CLEARING", "USD", "ACTIVE", 0),
        ids[3]: WalletState(ids[3], payee, "PRIMARY", "USD", "ACTIVE", 0),
    }
    transfer = PendingTransfer(
        id=uuid.uuid4(), seq=1, organization_id=payer, destination_organization_id=payee,
        kind="CROSS_ORG", source_wallet_id=ids[0], destination_wallet_id=ids[3], amount=60,
        currency="USD", created_at=NOW, source_clearing_wallet_id=ids[1],
        destination_clearing_wallet_id=ids[2],
    )  # fmt: skip
    plan = plan_postings([transfer], wallets)
    assert plan.outcomes[0].completed
    for org in (payer, payee):
        assert sum(w.balance for w in wallets.values() if w.organization_id == org) == 100 * (
            org == payer
        )
        signed = [
            e.amount if e.direction == CREDIT else -e.amount
            for e in plan.entries
            if e.organization_id == org
        ]
        assert sum(signed) == 0 and len(signed) == 2
    assert [wallets[i].balance for i in ids] == [40, 60, -60, 60]
