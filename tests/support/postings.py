"""Builders for the posting rules' unit tests: wallets and PENDING transfers in one
organization and one currency (USD), with ids that say which is which."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

from ledger_core.posting import PendingTransfer, WalletState

ORG = uuid.UUID(int=1)
NOW = datetime(2026, 1, 1, tzinfo=UTC)


def pending_transfer(
    seq: int,
    src: uuid.UUID,
    dst: uuid.UUID,
    amount: int,
    group: uuid.UUID | None = None,
    *,
    hold: bool = False,
) -> PendingTransfer:
    """Transfer number `seq` (id 10000 + seq), in `group` if atomic, a hold with `hold`."""
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
        atomic_group_id=group,
        hold_amount=amount if hold else None,
    )


def wallet_state(n: int, balance: int, overdraft: int = 0, kind: str = "PRIMARY") -> WalletState:
    """An ACTIVE wallet with id `n`, no holds, and `overdraft` allowed below zero."""
    return WalletState(uuid.UUID(int=n), ORG, kind, "USD", "ACTIVE", balance, 0, overdraft)


def wallet_states(balances: list[int], types: list[str]) -> dict[uuid.UUID, WalletState]:
    """Wallets 100, 101, ... with these balances and types, by id."""
    wallets = [
        wallet_state(100 + i, b, kind=t)
        for i, (b, t) in enumerate(zip(balances, types, strict=True))
    ]
    return {w.id: w for w in wallets}
