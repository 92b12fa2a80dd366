"""Helpers for risk tests below the HTTP layer: rules, transfers and posting with the policy."""

from __future__ import annotations

import uuid
from typing import Any
from uuid import UUID

from sqlalchemy import Engine, text

from ledger_core.persistence.risk.rules import load_policy
from ledger_core.persistence.tables import risk_rules, transactions
from ledger_core.persistence.transfers.posting import post_batch
from tests.support.ledger import Book


def add_rule(engine: Engine, book: Book, kind: str, **fields: Any) -> UUID:
    """Store an active rule for the book's organization; returns its id."""
    with engine.begin() as conn:
        return UUID(
            str(
                conn.execute(
                    risk_rules.insert()
                    .values(organization_id=book.organization_id, kind=kind, **fields)
                    .returning(risk_rules.c.id)
                ).scalar_one()
            )
        )


def submit(
    engine: Engine,
    book: Book,
    moves: list[tuple[UUID, UUID, int]],
    *,
    atomic: bool = False,
) -> list[UUID]:
    """Store PENDING transfers in order (as one atomic batch when asked); returns their ids."""
    ids = [uuid.uuid4() for _ in moves]
    group = ids[0] if atomic else None
    with engine.begin() as conn:
        for tx_id, (src, dst, amount) in zip(ids, moves, strict=True):
            conn.execute(
                transactions.insert().values(
                    id=tx_id,
                    organization_id=book.organization_id,
                    destination_organization_id=book.organization_id,
                    idempotency_key=f"risk-{tx_id}",
                    request_hash="0" * 64,
                    kind="TRANSFER",
                    source_wallet_id=src,
                    destination_wallet_id=dst,
                    amount=amount,
                    currency=book.currency,
                    atomic_group_id=group,
                    atomic_group_size=len(moves) if atomic else None,
                )
            )
    return ids


def drain(engine: Engine, limit: int = 1000) -> int:
    """Post every waiting transfer with the risk policy, as the posting worker does."""
    posted = 0
    while True:
        with engine.begin() as conn:
            result = post_batch(conn, limit, load_policy)
        posted += result.claimed
        if result.claimed == 0 and not result.more:  # `more`: wallets busy, again
            return posted


def outcomes(engine: Engine, ids: list[UUID]) -> list[tuple[str, str | None, str | None]]:
    """(status, failure_code, failure_message) of each transfer, in the order given."""
    with engine.connect() as conn:
        rows = conn.execute(
            text(
                "SELECT id, status, failure_code, failure_message FROM transactions"
                " WHERE id = ANY(CAST(:ids AS uuid[]))"
            ),
            {"ids": ids},
        ).all()
    found = {r.id: (r.status, r.failure_code, r.failure_message) for r in rows}
    return [found[i] for i in ids]


def fund(engine: Engine, book: Book, wallet_id: UUID, amount: int) -> None:
    """Move money from the book's SYSTEM wallet onto a wallet, posted for real."""
    ids = submit(engine, book, [(book.system_wallet_id, wallet_id, amount)])
    drain(engine)
    assert outcomes(engine, ids)[0][0] == "COMPLETED"
