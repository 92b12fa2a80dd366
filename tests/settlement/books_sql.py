"""Plain-SQL views of the books that tests assert on, independent of the code under test."""

from __future__ import annotations

from typing import Any
from uuid import UUID

from sqlalchemy import Engine, text


def nonzero_books(engine: Engine) -> list[Any]:
    """(organization, currency) whose wallet balances, or whose entries, do not sum to zero."""
    with engine.connect() as conn:
        return list(
            conn.execute(
                text("""
                    SELECT organization_id, currency, sum(balance) AS total, 'wallets' AS what
                    FROM wallets GROUP BY organization_id, currency HAVING sum(balance) <> 0
                    UNION ALL
                    SELECT organization_id, currency,
                           sum(CASE direction WHEN 'CREDIT' THEN amount ELSE -amount END),
                           'entries'
                    FROM ledger_entries GROUP BY organization_id, currency
                    HAVING sum(CASE direction WHEN 'CREDIT' THEN amount ELSE -amount END) <> 0
                """)
            )
        )


def clearing_balance(engine: Engine, org: UUID, peer: UUID) -> int:
    with engine.connect() as conn:
        balance: int = conn.execute(
            text(
                "SELECT balance FROM wallets WHERE type = 'CLEARING'"
                " AND organization_id = :o AND counterparty_organization_id = :p"
            ),
            {"o": org, "p": peer},
        ).scalar_one()
    return balance


def wallet_balance(engine: Engine, wallet_id: UUID) -> int:
    with engine.connect() as conn:
        balance: int = conn.execute(
            text("SELECT balance FROM wallets WHERE id = :id"), {"id": wallet_id}
        ).scalar_one()
    return balance


def settlement_of_each_transfer(engine: Engine) -> dict[UUID, list[UUID]]:
    """Every COMPLETED cross-org transfer and the settlements it is in (should be one)."""
    with engine.connect() as conn:
        rows = conn.execute(
            text("""
                SELECT t.id, coalesce(array_agg(i.settlement_id)
                                      FILTER (WHERE i.settlement_id IS NOT NULL), '{}')
                FROM transactions t LEFT JOIN settlement_items i ON i.transaction_id = t.id
                WHERE t.kind = 'CROSS_ORG' AND t.status = 'COMPLETED' GROUP BY t.id
            """)
        )
        return {r[0]: list(r[1]) for r in rows}


def settlements_agree_with_items(engine: Engine) -> list[Any]:
    """Settlements whose gross amounts or count differ from the transfers (and legs of
    multi-leg transactions, `leg` from 1) they list."""
    with engine.connect() as conn:
        return list(
            conn.execute(
                text("""
                    SELECT s.id FROM settlements s
                    JOIN settlement_items i ON i.settlement_id = s.id
                    JOIN transactions t ON t.id = i.transaction_id
                    CROSS JOIN LATERAL (
                        SELECT CASE WHEN i.leg = 0 THEN t.amount
                               ELSE CAST(t.postings -> (i.leg - 1) ->> 'amount' AS bigint)
                               END AS amount) x
                    GROUP BY s.id
                    HAVING count(*) <> max(s.transfer_count)
                       OR coalesce(sum(x.amount) FILTER (
                              WHERE t.organization_id = s.payer_organization_id), 0)
                          <> max(s.gross_payer_to_payee)
                       OR coalesce(sum(x.amount) FILTER (
                              WHERE t.organization_id = s.payee_organization_id), 0)
                          <> max(s.gross_payee_to_payer)
                       OR max(s.net_amount)
                          <> max(s.gross_payer_to_payee) - max(s.gross_payee_to_payer)
                """)
            )
        )


def events_of(engine: Engine, event_type: str) -> list[Any]:
    with engine.connect() as conn:
        return list(
            conn.execute(
                text("SELECT organization_id, data FROM outbox WHERE type = :t ORDER BY id"),
                {"t": event_type},
            )
        )
