"""Changed credentials reach every gateway process at once: a NOTIFY listener.

Deactivating a user, changing a role or a password, and revoking an API key each NOTIFY
`vaultcraft_credentials` in their own database transaction. Every gateway process keeps
one LISTEN connection and, on each notification, forgets what its caches hold of that
user (or every remembered key answer), so the next request is decided afresh. While the
connection is down nothing is heard: the caches' one-second lifetime still bounds how
long a change can go unseen, and everything is forgotten again on reconnecting.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from uuid import UUID

import psycopg
from aiohttp import web
from psycopg import sql

from gateway.state import KEY_CACHE, SETTINGS, USER_CACHE
from ledger_core.channels import CREDENTIALS_CHANNEL
from runtime.settings import to_psycopg_url

log = logging.getLogger("vaultcraft.gateway.credentials")


def forget(app: web.Application, payload: str) -> None:
    """Apply one notification: `user:<id>` or `key:<id>`; anything else forgets all."""
    kind, _, raw = payload.partition(":")
    if kind == "key":
        app[KEY_CACHE].forget_all()
        return
    try:
        app[USER_CACHE].forget(UUID(raw))
    except ValueError:
        forget_everything(app)


def forget_everything(app: web.Application) -> None:
    app[USER_CACHE].forget_all()
    app[KEY_CACHE].forget_all()


async def listen(app: web.Application, conninfo: str) -> None:
    while True:
        try:
            async with await psycopg.AsyncConnection.connect(
                conninfo, autocommit=True, application_name="vaultcraft-gateway-credentials"
            ) as conn:
                await conn.execute(sql.SQL("LISTEN {}").format(sql.Identifier(CREDENTIALS_CHANNEL)))
                forget_everything(app)  # whatever changed while nobody was listening
                async for notice in conn.notifies():
                    forget(app, notice.payload)
        except psycopg.OperationalError as exc:
            log.warning("Credential listener lost PostgreSQL (%s); reconnecting.", exc)
            await asyncio.sleep(1.0)


async def credential_listener(app: web.Application) -> AsyncIterator[None]:
    """`cleanup_ctx`: listen for changed credentials while the app runs."""
    conninfo = to_psycopg_url(app[SETTINGS].sqlalchemy_url)
    task = asyncio.create_task(listen(app, conninfo), name="credential-listener")
    yield
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task
