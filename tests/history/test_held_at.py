"""`GET /wallets/{id}/balance?at=` reports what holds reserved at that instant, over real HTTP.

A hold is placed by the real posting path and ended by the gateway (capture, void) or by
the scheduler's expiry; the instants between the steps are read from PostgreSQL's clock.
"""

from __future__ import annotations

import asyncio
import uuid
from datetime import datetime, timedelta
from typing import Any

import pytest
from aiohttp.test_utils import TestClient
from sqlalchemy import Engine, text

from ledger_core.services.holds import expire_overdue
from tests.risk.support import drain
from tests.support.api import API, Account, create_wallet, signup, system_wallet
from tests.support.ledger_sql import post_transfer

pytestmark = pytest.mark.asyncio


def _clock(engine: Engine) -> datetime:
    with engine.connect() as conn:
        instant: datetime = conn.execute(text("SELECT clock_timestamp()")).scalar_one()
    return instant


async def _position(
    client: TestClient, admin: Account, wallet_id: str, at: datetime
) -> tuple[str, str, str]:
    resp = await client.get(
        f"{API}/wallets/{wallet_id}/balance", params={"at": at.isoformat()}, headers=admin.headers
    )
    body = await resp.json()
    assert resp.status == 200, body
    return body["balance"], body["held"], body["available"]


async def _place_hold(
    client: TestClient, engine: Engine, admin: Account, source: str, amount: str, **extra: Any
) -> str:
    system = await system_wallet(client, admin.token)
    resp = await client.post(
        f"{API}/transactions/transfer",
        json={
            "source_wallet_id": source,
            "destination_wallet_id": system["id"],
            "amount": amount,
            "currency": "INR",
            "hold": True,
            **extra,
        },
        headers=admin.headers | {"Idempotency-Key": uuid.uuid4().hex},
    )
    assert resp.status == 202, await resp.text()
    drain(engine)
    hold_id = str((await resp.json())["id"])
    resp = await client.get(f"{API}/transactions/{hold_id}", headers=admin.headers)
    assert (await resp.json())["status"] == "HELD"
    return hold_id


async def _end_hold(
    client: TestClient, engine: Engine, admin: Account, hold_id: str, action: str
) -> None:
    """Ask for the capture or void, then let the posting path decide it."""
    resp = await client.post(
        f"{API}/transactions/{hold_id}/{action}",
        json={"amount": "0.75"} if action == "capture" else {},
        headers=admin.headers | {"Idempotency-Key": uuid.uuid4().hex},
    )
    assert resp.status == 202, await resp.text()
    drain(engine)


async def _funded(client: TestClient, engine: Engine) -> tuple[Account, str]:
    admin = await signup(client)
    system = await system_wallet(client, admin.token)
    wallet = await create_wallet(client, admin.token)
    post_transfer(engine, system["id"], wallet["id"], 300)
    return admin, wallet["id"]


async def test_held_before_while_open_and_after_a_capture(
    client: TestClient, engine: Engine
) -> None:
    admin, wallet_id = await _funded(client, engine)
    before = _clock(engine)
    hold_id = await _place_hold(client, engine, admin, wallet_id, "1.25")
    open_ = _clock(engine)
    await _end_hold(client, engine, admin, hold_id, "capture")
    after = _clock(engine)
    assert await _position(client, admin, wallet_id, before) == ("3.00", "0.00", "3.00")
    assert await _position(client, admin, wallet_id, open_) == ("3.00", "1.25", "1.75")
    assert await _position(client, admin, wallet_id, after) == ("2.25", "0.00", "2.25")


async def test_a_capture_moves_balance_and_held_at_one_instant(
    client: TestClient, engine: Engine
) -> None:
    """The capture's entry and the release of its hold carry the same instant: no moment
    shows the money both posted and still reserved, or neither."""
    admin, wallet_id = await _funded(client, engine)
    hold_id = await _place_hold(client, engine, admin, wallet_id, "1.25")
    await _end_hold(client, engine, admin, hold_id, "capture")
    resp = await client.get(f"{API}/transactions/{hold_id}/ledger", headers=admin.headers)
    (debit,) = [e for e in (await resp.json())["data"] if e["wallet_id"] == wallet_id]
    captured_at = datetime.fromisoformat(debit["created_at"])
    just_before = captured_at - timedelta(microseconds=1)
    assert await _position(client, admin, wallet_id, just_before) == ("3.00", "1.25", "1.75")
    assert await _position(client, admin, wallet_id, captured_at) == ("2.25", "0.00", "2.25")


async def test_held_after_a_void(client: TestClient, engine: Engine) -> None:
    admin, wallet_id = await _funded(client, engine)
    first = await _place_hold(client, engine, admin, wallet_id, "0.40")
    await _place_hold(client, engine, admin, wallet_id, "1.00")
    both = _clock(engine)
    await _end_hold(client, engine, admin, first, "void")
    voided = _clock(engine)
    assert await _position(client, admin, wallet_id, both) == ("3.00", "1.40", "1.60")
    assert await _position(client, admin, wallet_id, voided) == ("3.00", "1.00", "2.00")
    assert await _position(client, admin, wallet_id, both + timedelta(days=365)) == (
        "3.00",
        "1.00",
        "2.00",
    )


async def test_held_after_an_expiry(client: TestClient, engine: Engine) -> None:
    admin, wallet_id = await _funded(client, engine)
    await _place_hold(client, engine, admin, wallet_id, "2.00", hold_expires_in_s=1)
    open_ = _clock(engine)
    await asyncio.sleep(1.1)
    while expire_overdue(engine):
        pass
    expired = _clock(engine)
    assert await _position(client, admin, wallet_id, open_) == ("3.00", "2.00", "1.00")
    assert await _position(client, admin, wallet_id, expired) == ("3.00", "0.00", "3.00")
