"""The admin's per-currency summary, computed with aggregate SQL over wallets and transfers."""

from __future__ import annotations

from uuid import UUID

from sqlalchemy import Numeric, cast, func, select, text, union_all
from sqlalchemy.ext.asyncio import AsyncConnection

from ledger_core.persistence.tables import transactions, wallets
from ledger_core.summary import CurrencySummary

RECEIVED_LEGS = text("""
    SELECT currency, status, count(*), sum(amount) FROM (
        SELECT DISTINCT ON (t.id) p.leg ->> 'currency' AS currency, t.status,
               CAST(p.leg ->> 'amount' AS bigint) AS amount
        FROM transactions t
        CROSS JOIN LATERAL jsonb_array_elements(t.postings) WITH ORDINALITY AS p(leg, n)
        WHERE t.kind = 'MULTI' AND t.organization_id <> :org
          AND t.postings @> jsonb_build_array(
              jsonb_build_object('destination_organization_id', CAST(:org AS text)))
          AND p.leg ->> 'destination_organization_id' = CAST(:org AS text)
        ORDER BY t.id, p.n) AS first_legs
    GROUP BY currency, status
""")
"""Multi-leg transactions with a leg into the organization, by their first such leg
(`ix_transactions_multi_postings`)."""


async def summarize(conn: AsyncConnection, organization_id: UUID) -> list[CurrencySummary]:
    """Per currency: balances by wallet type, wallets by status, transfers by status.

    Transfers counted are those the organization sent plus cross-organization transfers
    and multi-leg transactions it received, each once (a multi-leg one by its first leg
    into the organization, as the payee's view shows it).
    """
    by_currency: dict[str, CurrencySummary] = {}

    def slot(currency: str) -> CurrencySummary:
        return by_currency.setdefault(currency, CurrencySummary(currency))

    wallet_rows = await conn.execute(
        select(
            wallets.c.currency,
            wallets.c.type,
            wallets.c.status,
            func.count(),
            cast(func.sum(wallets.c.balance), Numeric),
        )
        .where(wallets.c.organization_id == organization_id)
        .group_by(wallets.c.currency, wallets.c.type, wallets.c.status)
    )
    for currency, wallet_type, status, count, balance in wallet_rows:
        entry = slot(currency)
        entry.balance_by_type[wallet_type] += int(balance)
        entry.wallets_by_status[status] += count
    sent = select(transactions.c.currency, transactions.c.status, transactions.c.amount).where(
        transactions.c.organization_id == organization_id
    )
    received = select(transactions.c.currency, transactions.c.status, transactions.c.amount).where(
        transactions.c.destination_organization_id == organization_id,
        transactions.c.kind == "CROSS_ORG",
        transactions.c.organization_id != organization_id,
    )
    both = union_all(sent, received).subquery()
    transfer_rows = await conn.execute(
        select(
            both.c.currency, both.c.status, func.count(), cast(func.sum(both.c.amount), Numeric)
        ).group_by(both.c.currency, both.c.status)
    )
    for currency, status, count, volume in transfer_rows:
        entry = slot(currency)
        entry.transfer_count_by_status[status] += count
        entry.transfer_volume_by_status[status] += int(volume)
    for currency, status, count, volume in await conn.execute(
        RECEIVED_LEGS, {"org": organization_id}
    ):
        entry = slot(currency)
        entry.transfer_count_by_status[status] += count
        entry.transfer_volume_by_status[status] += int(volume)
    return [by_currency[c] for c in sorted(by_currency)]
