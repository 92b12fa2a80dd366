"""Reading transfers: list, one (with long poll), its ledger entries, a wallet's statement."""

from __future__ import annotations

from typing import Any
from uuid import UUID

import orjson
from aiohttp import web

from gateway.auth import principal
from gateway.csv_export import CHUNK_ROWS, stream_csv, text_cell, wants_csv
from gateway.long_poll import read_transfer, wait_decided
from gateway.pagination import page_after, page_response
from gateway.registry import RouteTable
from gateway.responses import json_response
from gateway.schemas.common import Page
from gateway.schemas.transactions import (
    EntriesOut,
    EntryOut,
    ListTransactions,
    StatementQuery,
    TransactionOut,
    WaitQuery,
)
from gateway.state import ENGINE
from ledger_core.history import entry_view
from ledger_core.keyset import Keyset
from ledger_core.services import transfer_reads
from ledger_core.services.transfer_reads import TransferFilter
from ledger_core.transfers import transaction_view

routes = RouteTable(tag="Transfers", read_scope="transfers:read", write_scope="transfers:write")


TRANSFER_COLUMNS = (
    "id",
    "created_at",
    "status",
    "kind",
    "amount",
    "currency",
    "source_wallet_id",
    "destination_wallet_id",
    "reference",
    "description",
    "metadata",
    "idempotency_key",
    "posted_at",
    "failure_code",
    "reverses_transaction_id",
)
"""The CSV export's columns; `metadata` is a JSON object."""
_TEXT_COLUMNS = frozenset({"reference", "description", "idempotency_key"})


@routes.get("/transactions", query=ListTransactions, response=Page[TransactionOut], also_csv=True)
async def list_all(request: web.Request, query: ListTransactions) -> web.StreamResponse:
    """List transfers, newest first

    Transfers the organization sent, and cross-organization transfers it received. A member
    sees only transfers touching their own wallets. Filters: `status`, `wallet_id`, `kind`,
    `idempotency_key` (of transfers the organization sent), `from` / `to` (creation time),
    `reference`, `metadata[key]=value` (repeatable: all must match). With `?format=csv` or
    `Accept: text/csv`: every matching transfer as CSV (header row first, no pages), streamed.
    """
    who = principal(request)
    after = page_after(request, query)
    f = TransferFilter(
        status=query.status,
        wallet_id=query.wallet_id,
        kind=query.kind,
        created_from=query.from_,
        created_to=query.to,
        idempotency_key=query.idempotency_key,
        reference=query.reference,
        metadata=query.metadata,
        after=None
        if after is None or not isinstance(after.id, UUID)
        else (after.created_at, after.id),
    )
    if wants_csv(request, query.format):
        return await _transfers_csv(request, f)
    rows = await transfer_reads.transfers_page(request.app[ENGINE], who, f, query.limit)
    next_key = Keyset(rows[-1]["created_at"], rows[-1]["id"]) if len(rows) == query.limit else None
    return page_response(
        request, [transaction_view(r, who.organization_id) for r in rows], next_key
    )


async def _transfers_csv(request: web.Request, f: TransferFilter) -> web.StreamResponse:
    who = principal(request)

    def row(transfer: dict[str, Any]) -> list[Any]:
        view = transaction_view(transfer, who.organization_id)
        view["metadata"] = orjson.dumps(view["metadata"]).decode()
        return [
            text_cell(view[c]) if c in _TEXT_COLUMNS else ("" if view[c] is None else view[c])
            for c in TRANSFER_COLUMNS
        ]

    async with transfer_reads.transfers_chunks(request.app[ENGINE], who, f, CHUNK_ROWS) as chunks:
        return await stream_csv(request, "transfers.csv", TRANSFER_COLUMNS, chunks, row)


@routes.get(
    "/transactions/{transaction_id}", query=WaitQuery, response=TransactionOut, errors=(403, 404)
)
async def get_one(request: web.Request, transaction_id: UUID, query: WaitQuery) -> web.Response:
    """Read a transfer; `?wait=N` holds the answer until it is final or N seconds pass

    Visible to the organization that sent it and, for a cross-organization transfer, to the
    payee (without the payer's wallet). A member sees only transfers touching their own
    wallets. With `?wait=` the answer comes as soon as the transfer is COMPLETED, FAILED or
    CANCELLED, or after N seconds with whatever it is then; no need to poll.
    """
    who = principal(request)
    if not query.wait:
        row = await read_transfer(request, transaction_id)
    else:
        row = await wait_decided(request, transaction_id, float(query.wait))
    return json_response(transaction_view(row, who.organization_id))


@routes.get("/transactions/{transaction_id}/ledger", response=EntriesOut, errors=(403, 404))
async def ledger(request: web.Request, transaction_id: UUID) -> web.Response:
    """A transfer's ledger entries in the caller's books (debits equal credits)

    Empty while the transfer is PENDING, FAILED or CANCELLED: entries are written only when
    a worker posts it. A cross-organization transfer shows only the caller's side (through
    its CLEARING wallet).
    """
    entries = await transfer_reads.ledger_of_transfer(
        request.app[ENGINE], principal(request), transaction_id
    )
    return json_response({"data": [entry_view(e) for e in entries]})


@routes.get(
    "/wallets/{wallet_id}/entries",
    query=StatementQuery,
    response=Page[EntryOut],
    errors=(403, 404),
    scope="wallets:read",
)
async def statement(request: web.Request, wallet_id: UUID, query: StatementQuery) -> web.Response:
    """A wallet's statement: its entries with running balances, oldest first

    Every DEBIT and CREDIT on the wallet with `balance_after`; the last entry's
    `balance_after` is the wallet's balance. Members read only their own wallets (`403`).
    Filter with `from`/`to` (RFC 3339 with a time zone).
    """
    after = page_after(request, query, ids=int)
    entries = await transfer_reads.statement(
        request.app[ENGINE],
        principal(request),
        wallet_id,
        created_from=query.from_,
        created_to=query.to,
        after_id=after.id if after is not None and isinstance(after.id, int) else None,
        limit=query.limit,
    )
    next_key = (
        Keyset(entries[-1]["created_at"], entries[-1]["id"])
        if len(entries) == query.limit
        else None
    )
    return page_response(request, [entry_view(e) for e in entries], next_key)
