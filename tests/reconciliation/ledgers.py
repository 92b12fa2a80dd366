"""A small clean ledger touching every shape of posting: funding, transfers, cross-org,
settlement, and transfers that ended without posting."""

from __future__ import annotations

from dataclasses import dataclass
from uuid import UUID

from tests.reconciliation.books import Books


@dataclass(frozen=True)
class Ledger:
    acme: UUID
    globex: UUID
    acme_system: UUID
    globex_system: UUID
    alice: UUID
    bob: UUID
    carol: UUID
    acme_clearing: UUID
    globex_clearing: UUID
    funding: UUID
    alice_to_bob: UUID
    cross: UUID
    settlement: UUID


def build_ledger(books: Books) -> Ledger:
    acme, globex = books.organization("Acme"), books.organization("Globex")
    acme_system, globex_system = books.wallet(acme, "SYSTEM"), books.wallet(globex, "SYSTEM")
    alice, bob, carol = books.wallet(acme), books.wallet(acme), books.wallet(globex)
    acme_clearing = books.wallet(acme, "CLEARING", peer=globex)
    globex_clearing = books.wallet(globex, "CLEARING", peer=acme)
    funding = books.transfer(acme_system, alice, 10_000)
    books.transfer(globex_system, carol, 5_000)
    alice_to_bob = books.transfer(alice, bob, 2_500)
    books.transfer(bob, alice, 500)
    cross = books.cross_org(alice, acme_clearing, globex_clearing, carol, 1_200)
    settlement = books.settlement(
        acme,
        globex,
        [
            (acme_clearing, "DEBIT", 1_200),
            (acme_system, "CREDIT", 1_200),
            (globex_system, "DEBIT", 1_200),
            (globex_clearing, "CREDIT", 1_200),
        ],
    )
    books.unposted(alice, bob, 99, "FAILED")
    books.unposted(alice, bob, 98, "CANCELLED")
    books.unposted(alice, bob, 97, "PENDING")
    return Ledger(
        acme, globex, acme_system, globex_system, alice, bob, carol, acme_clearing,
        globex_clearing, funding, alice_to_bob, cross, settlement,
    )  # fmt: skip
