"""Wallets: open, list, read, lock/close, and the admin's per-currency summary."""

from __future__ import annotations

from uuid import UUID

from aiohttp import web

from gateway.auth import acting, principal
from gateway.pagination import page_after, page_response
from gateway.registry import RouteTable
from gateway.responses import created, json_response
from gateway.schemas.common import Page
from gateway.schemas.wallets import (
    CreateWallet,
    ListWallets,
    UpdateWallet,
    WalletOut,
    WalletSummaryOut,
)
from gateway.state import ENGINE
from ledger_core.services import wallets as service
from ledger_core.services.wallets import WalletFilters
from ledger_core.wallets import WalletStatus, WalletType

routes = RouteTable(tag="Wallets", read_scope="wallets:read", write_scope="wallets:write")


@routes.post(
    "/wallets",
    body=CreateWallet,
    response=WalletOut,
    status=201,
    errors=(403, 404, 409),
    created_path="/wallets/{wallet_id}",
)
async def create_wallet(request: web.Request, body: CreateWallet) -> web.Response:
    """Open a wallet

    PRIMARY and BONUS wallets: anyone, for themselves; an admin may pass `user_id` of a
    user of the organization (another organization's user is `404`). SYSTEM wallets:
    admins only, one per currency (`409 system_wallet_exists`). CLEARING wallets are
    created by the ledger. An unknown currency is `422 invalid_currency`.
    """
    wallet = await service.open_wallet(
        request.app[ENGINE],
        acting(request),
        wallet_type=WalletType(body.type),
        currency=body.currency,
        user_id=body.user_id,
        name=body.name,
        metadata=body.metadata,
    )
    return created(wallet.as_json(), f"/wallets/{wallet.id}")


@routes.get("/wallets", query=ListWallets, response=Page[WalletOut])
async def get_wallets(request: web.Request, query: ListWallets) -> web.Response:
    """List wallets, newest first

    A member sees their own wallets; an admin every wallet of the organization,
    SYSTEM and CLEARING ones included.
    """
    filters = WalletFilters(
        type=None if query.type is None else WalletType(query.type),
        status=None if query.status is None else WalletStatus(query.status),
        currency=query.currency,
        user_id=query.user_id,
        metadata=query.metadata,
    )
    wallets, next_key = await service.wallets_page(
        request.app[ENGINE],
        principal(request),
        filters,
        after=page_after(request, query),
        limit=query.limit,
    )
    return page_response(request, [w.as_json() for w in wallets], next_key)


@routes.get("/wallets/summary", response=WalletSummaryOut, errors=(403,))
async def wallet_summary(request: web.Request) -> web.Response:
    """Per-currency totals of the organization (admin)

    Balances by wallet type, wallets by status, and transfer counts and volumes by status
    (transfers the organization sent, and cross-organization transfers it received).
    """
    summaries = await service.wallet_summary(request.app[ENGINE], principal(request))
    return json_response({"data": [s.as_json() for s in summaries]})


@routes.get("/wallets/{wallet_id}", response=WalletOut, errors=(403, 404))
async def get_wallet(request: web.Request, wallet_id: UUID) -> web.Response:
    """Read a wallet

    Another organization's wallet is `404`; a member reading a wallet that is not theirs
    is `403`.
    """
    wallet = await service.read_wallet(request.app[ENGINE], principal(request), wallet_id)
    return json_response(wallet.as_json())


@routes.patch("/wallets/{wallet_id}", body=UpdateWallet, response=WalletOut, errors=(403, 404, 409))
async def update_wallet(request: web.Request, wallet_id: UUID, body: UpdateWallet) -> web.Response:
    """Lock, unlock or close a wallet, set its overdraft limit or replace its metadata (admin)

    ACTIVE and LOCKED go back and forth. CLOSED needs a zero balance and no PENDING
    transfer or open hold touching the wallet (`409 wallet_not_empty`) and is final
    (`409 invalid_status_transition`). Each change emits a `wallet.status_changed` event.
    `overdraft_limit` lets a PRIMARY or BONUS wallet go down to minus that amount; a limit
    below what it already uses is `409 overdraft_in_use`. `metadata` replaces the
    wallet's metadata whole.
    """
    wallet = await service.update_wallet(
        request.app[ENGINE],
        acting(request),
        wallet_id,
        status=None if body.status is None else WalletStatus(body.status),
        metadata=body.metadata,
        overdraft_limit=body.overdraft_limit,
    )
    return json_response(wallet.as_json())
