"""Reading transfers and ledger entries as one organization (and one member) may see them."""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from datetime import datetime
from typing import Any
from uuid import UUID

from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from ledger_core.accounts import Principal
from ledger_core.persistence.transfers.reads import (
    TransferFilter,
    find_transfer,
    find_transfers_unchecked,
    list_transfers,
    stream_transfers,
    transfer_entries,
    wallet_entries,
)
from ledger_core.services.wallets import visible_wallet
from ledger_core.transfer_rules import visible_to


async def read_transfer(
    engine: AsyncEngine, principal: Principal, transfer_id: UUID
) -> dict[str, Any]:
    """A transfer the caller may read: 404 outside their organization, 403 for a member
    whose wallets it does not touch."""
    async with _one_statement(engine) as conn:
        return visible_to(
            await find_transfer(conn, principal.organization_id, transfer_id), principal
        )


async def read_rows_unchecked(
    engine: AsyncEngine, ids: Sequence[UUID]
) -> dict[UUID, dict[str, Any]]:
    """Many transfers by id, for any reader: pass each through `visible_to` before use."""
    async with _one_statement(engine) as conn:
        return await find_transfers_unchecked(conn, ids)


@asynccontextmanager
async def _one_statement(engine: AsyncEngine) -> AsyncIterator[AsyncConnection]:
    """A connection in autocommit, for a read of one statement: no `BEGIN` before it and
    no `ROLLBACK` after, each a round trip of its own."""
    async with engine.connect() as conn:
        await conn.execution_options(isolation_level="AUTOCOMMIT")
        yield conn


async def transfers_page(
    engine: AsyncEngine, principal: Principal, filters: TransferFilter, limit: int
) -> list[dict[str, Any]]:
    """Newest first: what the organization sent and received; a member's own only."""
    member = None if principal.is_admin else principal.user_id
    async with engine.connect() as conn:
        return await list_transfers(conn, principal.organization_id, member, filters, limit)


@asynccontextmanager
async def transfers_chunks(
    engine: AsyncEngine, principal: Principal, filters: TransferFilter, chunk: int
) -> AsyncIterator[AsyncIterator[list[dict[str, Any]]]]:
    """Every transfer `transfers_page` pages through, `chunk` at a time, from a server-side
    cursor of one REPEATABLE READ snapshot: memory stays flat however many there are."""
    member = None if principal.is_admin else principal.user_id
    async with engine.connect() as conn:
        await conn.execution_options(isolation_level="REPEATABLE READ")
        yield stream_transfers(conn, principal.organization_id, member, filters, chunk)


async def ledger_of_transfer(
    engine: AsyncEngine, principal: Principal, transfer_id: UUID
) -> list[dict[str, Any]]:
    """A transfer's entries in the caller's own books."""
    async with engine.connect() as conn:
        visible_to(await find_transfer(conn, principal.organization_id, transfer_id), principal)
        return await transfer_entries(conn, principal.organization_id, transfer_id)


async def statement(
    engine: AsyncEngine,
    principal: Principal,
    wallet_id: UUID,
    *,
    created_from: datetime | None,
    created_to: datetime | None,
    after_id: int | None,
    limit: int,
) -> list[dict[str, Any]]:
    """A wallet's entries with running balances, oldest first."""
    async with engine.connect() as conn:
        await visible_wallet(conn, principal, wallet_id)
        return await wallet_entries(
            conn,
            wallet_id,
            created_from=created_from,
            created_to=created_to,
            after_id=after_id,
            limit=limit,
        )


__all__ = [
    "TransferFilter",
    "ledger_of_transfer",
    "read_rows_unchecked",
    "read_transfer",
    "statement",
    "transfers_chunks",
    "transfers_page",
    "visible_to",
]
