"""Holding an answer until a transfer is decided: the `?wait=N` of a read and of a submit.

Both go through the gateway's `FinalWaiter`, which reads every transfer woken at one moment
with one query; a submit's own transfer is one the intake told the waiter to expect, so
its wait reads nothing until the transfer's final notification arrives.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping, Sequence
from typing import Any
from uuid import UUID

from aiohttp import web

from gateway.auth import principal
from gateway.state import ENGINE, WAITER
from ledger_core.services import transfer_reads
from ledger_core.services.transfer_reads import visible_to
from ledger_core.transfers import DECIDED_STATUSES


async def wait_decided(
    request: web.Request,
    transaction_id: UUID,
    wait_s: float,
    stored: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """The transfer once it is COMPLETED, FAILED, CANCELLED or HELD, or as it is after
    `wait_s`, read with the caller's own access. Given the row its submitter `stored`, a
    final notification that carries the new state is applied to that row, unread."""
    who = principal(request)

    async def read(handed: dict[str, Any] | None) -> dict[str, Any]:
        if handed is not None:
            return visible_to(handed, who)
        return await read_transfer(request, transaction_id)

    return await request.app[WAITER].wait_until(
        transaction_id,
        wait_s,
        read,
        lambda row: row["status"] in DECIDED_STATUSES,
        caller=(who.organization_id, who.user_id),
        apply=None if stored is None else lambda final: final.applied_to(stored),
    )


async def wait_all_decided(
    request: web.Request, rows: Sequence[Mapping[str, Any]], wait_s: int
) -> list[Mapping[str, Any]]:
    """`rows` (transfers as their submitter stored them), each still undecided one waited
    on at once, together, for at most `wait_s` (none when 0) and replaced by what it is
    then."""
    now = list(rows)
    if not wait_s:
        return now
    waiting = [n for n, row in enumerate(now) if row["status"] not in DECIDED_STATUSES]
    decided = await asyncio.gather(
        *(wait_decided(request, now[n]["id"], float(wait_s), now[n]) for n in waiting)
    )
    for n, row in zip(waiting, decided, strict=True):
        now[n] = row
    return now


async def read_transfer(request: web.Request, transaction_id: UUID) -> dict[str, Any]:
    return await transfer_reads.read_transfer(
        request.app[ENGINE], principal(request), transaction_id
    )
