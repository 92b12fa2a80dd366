"""The gateway's transfer intake: group commit of intents and long-poll wake-ups.

Both live for the lifetime of the app (`cleanup_ctx`): the committer's writer tasks and
the LISTEN connection that wakes `?wait=` requests. The committer tells the waiter which
transfers it is about to store, so that their submitters' long polls need not read them
before they are final.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from typing import Any
from uuid import UUID

from aiohttp import web

from gateway.final_waiter import FinalWaiter
from gateway.state import COMMITTER, ENGINE, SETTINGS, WAITER
from ledger_core.services.transfer_reads import read_rows_unchecked
from ledger_core.services.transfers import transfer_committer
from runtime.settings import to_psycopg_url


async def intake_context(app: web.Application) -> AsyncIterator[None]:
    engine = app[ENGINE]

    async def read_rows(ids: Sequence[UUID]) -> dict[UUID, dict[str, Any]]:
        return await read_rows_unchecked(engine, ids)

    waiter = FinalWaiter(to_psycopg_url(app[SETTINGS].sqlalchemy_url), read_rows)
    await waiter.start()
    app[WAITER] = waiter
    committer = transfer_committer(engine, waiter.expect, app[SETTINGS].intake_gather_ms)
    await committer.start()
    app[COMMITTER] = committer
    yield
    await committer.stop()
    await waiter.stop()
