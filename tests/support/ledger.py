"""Build ledger fixtures straight in the database, for tests below the HTTP layer."""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass

from sqlalchemy import Connection, Engine, text

from ledger_core.intents import TransferIntent


@dataclass(frozen=True)
class Book:
    organization_id: uuid.UUID
    system_wallet_id: uuid.UUID
    wallet_ids: list[uuid.UUID]
    currency: str


def create_book(engine: Engine, wallets: int, currency: str = "USD") -> Book:
    """An organization with a SYSTEM wallet and `wallets` PRIMARY wallets, all empty."""
    with engine.begin() as conn:
        org = conn.execute(
            text(
                "INSERT INTO organizations (name, default_currency) VALUES ('t', :c) RETURNING id"
            ),
            {"c": currency},
        ).scalar_one()
        system = conn.execute(
            text(
                "INSERT INTO wallets (organization_id, type, currency) VALUES (:o, 'SYSTEM', :c) RETURNING id"
            ),
            {"o": org, "c": currency},
        ).scalar_one()
        ids = [
            conn.execute(
                text(
                    "INSERT INTO wallets (organization_id, type, currency) VALUES (:o, 'PRIMARY', :c) RETURNING id"
                ),
                {"o": org, "c": currency},
            ).scalar_one()
            for _ in range(wallets)
        ]
    return Book(org, system, ids, currency)


def insert_intents(
    conn: Connection, book: Book, moves: list[tuple[uuid.UUID, uuid.UUID, int]]
) -> list[uuid.UUID]:
    """Store transfers as PENDING the way the gateway does, in the given order."""
    ids = []
    for src, dst, amount in moves:
        intent = TransferIntent(
            idempotency_key=str(uuid.uuid4()),
            source_wallet_id=src,
            destination_wallet_id=dst,
            amount=amount,
            currency=book.currency,
        )
        ids.append(
            conn.execute(
                text(
                    "INSERT INTO transactions (organization_id, destination_organization_id,"
                    " idempotency_key, request_hash, kind, source_wallet_id, destination_wallet_id,"
                    " amount, currency, metadata) VALUES (:o, :o, :k, :h, 'TRANSFER', :s, :d, :a, :c,"
                    " CAST(:m AS jsonb)) RETURNING id"
                ),
                {
                    "o": book.organization_id,
                    "k": intent.idempotency_key,
                    "h": intent.request_hash(),
                    "s": src,
                    "d": dst,
                    "a": amount,
                    "c": book.currency,
                    "m": json.dumps({}),
                },
            ).scalar_one()
        )
    return ids
