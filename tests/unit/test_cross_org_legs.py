"""Posting rules for multi-leg transactions whose legs cross organizations: every leg into
another organization moves through the clearing wallets of its pair, and each organization's
books balance per currency, whatever the legs, amounts and funds."""

from __future__ import annotations

import uuid
from collections import Counter, defaultdict
from dataclasses import dataclass

from hypothesis import given, settings
from hypothesis import strategies as st

from ledger_core.posting import CREDIT, Leg, PendingTransfer, WalletState, plan_postings
from tests.support.postings import NOW

PAYER = uuid.UUID(int=1)
PAYEES = (uuid.UUID(int=2), uuid.UUID(int=3))
CURRENCIES = ("USD", "EUR")


@dataclass
class World:
    """Each organization's PRIMARY and SYSTEM wallet per currency, and the clearing
    wallets between the payer and each payee (both sides), all by id."""

    wallets: dict[uuid.UUID, WalletState]
    primary: dict[tuple[uuid.UUID, str], list[uuid.UUID]]
    clearing: dict[tuple[uuid.UUID, uuid.UUID, str], uuid.UUID]


def _world(balances: list[int]) -> World:
    wallets: dict[uuid.UUID, WalletState] = {}
    primary: dict[tuple[uuid.UUID, str], list[uuid.UUID]] = defaultdict(list)
    clearing: dict[tuple[uuid.UUID, uuid.UUID, str], uuid.UUID] = {}
    funds = iter(balances)

    def add(org: uuid.UUID, kind: str, currency: str, balance: int) -> uuid.UUID:
        wallet_id = uuid.UUID(int=1000 + len(wallets))
        wallets[wallet_id] = WalletState(wallet_id, org, kind, currency, "ACTIVE", balance)
        return wallet_id

    for org in (PAYER, *PAYEES):
        for currency in CURRENCIES:
            funded = [next(funds) for _ in range(2)] if org == PAYER else [0, 0]
            for balance in funded:
                primary[(org, currency)].append(add(org, "PRIMARY", currency, balance))
            add(org, "SYSTEM", currency, -sum(funded))
    for payee in PAYEES:
        for currency in CURRENCIES:
            clearing[(PAYER, payee, currency)] = add(PAYER, "CLEARING", currency, 0)
            clearing[(payee, PAYER, currency)] = add(payee, "CLEARING", currency, 0)
    return World(wallets, dict(primary), clearing)


@st.composite
def scenarios(draw: st.DrawFn) -> tuple[World, list[PendingTransfer]]:
    world = _world(draw(st.lists(st.integers(0, 1_000), min_size=4, max_size=4)))
    transfers = []
    for seq in range(draw(st.integers(1, 8))):
        legs = []
        for _ in range(draw(st.integers(1, 5))):
            currency = draw(st.sampled_from(CURRENCIES))
            payee = draw(st.sampled_from((PAYER, *PAYEES)))
            source, other = world.primary[(PAYER, currency)]
            destination = other if payee == PAYER else world.primary[(payee, currency)][0]
            amount = draw(st.integers(1, 600))
            if payee == PAYER:
                legs.append(Leg(source, destination, amount, currency))
                continue
            legs.append(
                Leg(
                    source,
                    destination,
                    amount,
                    currency,
                    payee,
                    world.clearing[(PAYER, payee, currency)],
                    world.clearing[(payee, PAYER, currency)],
                )
            )
        first = legs[0]
        transfers.append(
            PendingTransfer(
                id=uuid.UUID(int=50_000 + seq),
                seq=seq,
                organization_id=PAYER,
                destination_organization_id=PAYER,
                kind="MULTI",
                source_wallet_id=first.source_wallet_id,
                destination_wallet_id=first.destination_wallet_id,
                amount=first.amount,
                currency=first.currency,
                created_at=NOW,
                postings=tuple(legs),
            )
        )
    return world, transfers


def _sums(wallets: dict[uuid.UUID, WalletState]) -> Counter[tuple[uuid.UUID, str]]:
    sums: Counter[tuple[uuid.UUID, str]] = Counter()
    for w in wallets.values():
        sums[(w.organization_id, w.currency)] += w.balance
    return sums


@settings(max_examples=300, deadline=None)
@given(scenarios())
def test_cross_org_legs_balance_in_every_book_per_currency(
    scenario: tuple[World, list[PendingTransfer]],
) -> None:
    world, transfers = scenario
    wallets = world.wallets
    before = {w.id: w.balance for w in wallets.values()}
    sums_before = _sums(wallets)

    plan = plan_postings(transfers, wallets)

    # Every organization still sums to zero per currency, as it did before
    assert (
        {k: v for k, v in _sums(wallets).items() if v}
        == {k: v for k, v in sums_before.items() if v}
        == {}
    )
    # Each transaction's entries balance per organization and currency
    books: Counter[tuple[uuid.UUID, uuid.UUID, str]] = Counter()
    for e in plan.entries:
        books[(e.transaction_id, e.organization_id, e.currency)] += (
            e.amount if e.direction == CREDIT else -e.amount
        )
    assert all(v == 0 for v in books.values())
    # A posted transaction has 2 entries per leg inside the payer, 4 per leg across (through
    # the pair's clearing wallets); a failed one has none, and its failure names a leg
    written = Counter(e.transaction_id for e in plan.entries)
    for outcome in plan.outcomes:
        legs = outcome.transfer.postings or ()
        if outcome.completed:
            assert written[outcome.transfer.id] == sum(4 if leg.cross_org else 2 for leg in legs)
        else:
            assert written[outcome.transfer.id] == 0
            assert outcome.failure_code == "insufficient_funds"
            assert outcome.failure_message and outcome.failure_message.startswith("posting ")
    # History explains balances; only SYSTEM and CLEARING wallets go below zero
    running = dict(before)
    for e in plan.entries:
        running[e.wallet_id] += e.amount if e.direction == CREDIT else -e.amount
        assert e.balance_after == running[e.wallet_id]
        assert wallets[e.wallet_id].organization_id == e.organization_id
    for w in wallets.values():
        assert w.balance == running[w.id]
        if w.type == "PRIMARY":
            assert w.balance >= 0
    # Each clearing wallet holds exactly what its posted legs moved: the payer's owes (+),
    # the payee's is owed (-)
    for (own, peer, currency), wallet_id in world.clearing.items():
        moved = sum(
            leg.amount
            for o in plan.outcomes
            if o.completed
            for leg in o.transfer.postings or ()
            if leg.currency == currency and PAYER in (own, peer) and leg.cross_org
            and leg.destination_organization_id == (peer if own == PAYER else own)
        )  # fmt: skip
        assert wallets[wallet_id].balance == (moved if own == PAYER else -moved)
