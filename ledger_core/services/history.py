"""A wallet's past as its owner (or an admin) may read it: balance at an instant, statements."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from typing import Any
from uuid import UUID

from sqlalchemy.ext.asyncio import AsyncEngine

from ledger_core.accounts import Principal
from ledger_core.history import BalanceAt, Statement, check_range
from ledger_core.keyset import Keyset
from ledger_core.persistence.pages import split_page
from ledger_core.persistence.wallets.history import (
    position_at,
    range_totals,
    statement_page,
    stream_statement,
)
from ledger_core.services.wallets import visible_wallet


async def wallet_balance_at(
    engine: AsyncEngine, principal: Principal, wallet_id: UUID, at: datetime | None
) -> BalanceAt:
    """The wallet's posted balance and what its open holds reserved as of `at` (now when
    not given), everything written at exactly `at` included."""
    at = datetime.now(UTC) if at is None else at
    async with engine.connect() as conn:
        wallet = await visible_wallet(conn, principal, wallet_id)
        position = await position_at(conn, wallet_id, at)
    return BalanceAt(
        wallet_id=wallet_id,
        currency=wallet.currency,
        at=at,
        balance=position.balance,
        held=position.held,
    )


async def wallet_statement(
    engine: AsyncEngine,
    principal: Principal,
    wallet_id: UUID,
    *,
    start: datetime | None,
    end: datetime | None,
    after: Keyset | None,
    limit: int,
) -> Statement:
    """Entries created in `[start, end)` (from the wallet's opening to now by default),
    one page oldest first, with opening and closing balances and totals of the range.

    One REPEATABLE READ snapshot, so the totals and the page agree with each other.
    """
    async with engine.connect() as conn:
        await conn.execution_options(isolation_level="REPEATABLE READ")
        wallet = await visible_wallet(conn, principal, wallet_id)
        start, end = _range(wallet.created_at, start, end)
        totals = await range_totals(conn, wallet_id, start, end)
        rows = await statement_page(conn, wallet_id, start, end, after=after, limit=limit + 1)
    entries, next_key = split_page(rows, limit, lambda e: Keyset(e["created_at"], e["id"]))
    return Statement(
        wallet_id=wallet_id,
        currency=wallet.currency,
        start=start,
        end=end,
        opening=totals.opening,
        closing=totals.closing,
        debits=totals.debits,
        credits=totals.credits,
        entries=entries,
        next_key=next_key,
    )


@asynccontextmanager
async def statement_chunks(
    engine: AsyncEngine,
    principal: Principal,
    wallet_id: UUID,
    *,
    start: datetime | None,
    end: datetime | None,
    chunk: int,
) -> AsyncIterator[AsyncIterator[list[dict[str, Any]]]]:
    """Every entry of the statement's range, oldest first, `chunk` at a time.

    The caller is checked on entering, before anything is sent; the entries are then read
    through a server-side cursor of one REPEATABLE READ snapshot, so memory stays flat
    however long the range.
    """
    async with engine.connect() as conn:
        await conn.execution_options(isolation_level="REPEATABLE READ")
        wallet = await visible_wallet(conn, principal, wallet_id)
        start, end = _range(wallet.created_at, start, end)
        yield stream_statement(conn, wallet_id, start, end, chunk)


def _range(
    opened: datetime, start: datetime | None, end: datetime | None
) -> tuple[datetime, datetime]:
    """`[start, end)` with its defaults: from the wallet's opening, up to now."""
    end = datetime.now(UTC) if end is None else end
    start = min(opened, end) if start is None else start
    check_range(start, end)
    return start, end
