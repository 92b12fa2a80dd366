"""A wallet's history: its balance at any instant and its statements (JSON or CSV)."""

from __future__ import annotations

from uuid import UUID

from aiohttp import web

from gateway.auth import principal
from gateway.csv_export import CHUNK_ROWS, stream_csv, wants_csv
from gateway.pagination import next_cursor, page_after
from gateway.registry import RouteTable
from gateway.responses import json_response
from gateway.schemas.history import BalanceAtOut, BalanceAtQuery, StatementOut, WalletStatementQuery
from gateway.state import ENGINE
from ledger_core.history import ENTRY_COLUMNS, entry_row
from ledger_core.services import history

routes = RouteTable(tag="Wallets", read_scope="wallets:read", write_scope="wallets:write")


@routes.get(
    "/wallets/{wallet_id}/balance", query=BalanceAtQuery, response=BalanceAtOut, errors=(403, 404)
)
async def wallet_balance_at(
    request: web.Request, wallet_id: UUID, query: BalanceAtQuery
) -> web.Response:
    """A wallet's posted balance at any instant

    The running balance of the wallet's last entry at or before `at`: `0` before its first
    entry, the current balance for an instant in the future.
    """
    found = await history.wallet_balance_at(
        request.app[ENGINE], principal(request), wallet_id, query.at
    )
    return json_response(found.as_json())


@routes.get(
    "/wallets/{wallet_id}/statement",
    query=WalletStatementQuery,
    response=StatementOut,
    errors=(403, 404),
    also_csv=True,
)
async def wallet_statement(
    request: web.Request, wallet_id: UUID, query: WalletStatementQuery
) -> web.StreamResponse:
    """A wallet's statement for `[from, to)`

    Entries oldest first with their running balances, a page at a time; the opening
    balance (before `from`), the closing balance (before `to`) and the debits and credits
    of the whole range, so `opening + credits - debits = closing`. With `?format=csv` or
    `Accept: text/csv`: every entry of the range as CSV (header row first), streamed.
    """
    if wants_csv(request, query.format):
        return await _statement_csv(request, wallet_id, query)
    after = page_after(request, query, ids=int)
    found = await history.wallet_statement(
        request.app[ENGINE],
        principal(request),
        wallet_id,
        start=query.from_,
        end=query.to,
        after=after,
        limit=query.limit,
    )
    return json_response(found.as_json() | {"next_cursor": next_cursor(request, found.next_key)})


async def _statement_csv(
    request: web.Request, wallet_id: UUID, query: WalletStatementQuery
) -> web.StreamResponse:
    """Every entry of the range (no pages), streamed as CSV with a header row."""
    async with history.statement_chunks(
        request.app[ENGINE],
        principal(request),
        wallet_id,
        start=query.from_,
        end=query.to,
        chunk=CHUNK_ROWS,
    ) as chunks:
        name = f"statement-{wallet_id}.csv"
        return await stream_csv(request, name, ENTRY_COLUMNS, chunks, entry_row)
