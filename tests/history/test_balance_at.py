"""`GET /wallets/{id}/balance?at=`: the posted balance at any instant, over real HTTP."""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta
from typing import Any

import pytest
import pytest_asyncio
from aiohttp.test_utils import TestClient
from sqlalchemy import Engine, text

from ledger_core.persistence.transfers.posting import post_batch
from tests.risk.support import drain
from tests.support.api import (
    API,
    Account,
    add_user,
    create_wallet,
    expect_problem,
    signup,
    system_wallet,
)
from tests.support.ledger_sql import pending_transfer, post_transfer

pytestmark = pytest.mark.asyncio


async def _entries(client: TestClient, admin: Account, wallet_id: str) -> list[dict[str, Any]]:
    resp = await client.get(f"{API}/wallets/{wallet_id}/entries", headers=admin.headers)
    assert resp.status == 200
    return list((await resp.json())["data"])


async def _balance_at(client: TestClient, admin: Account, wallet_id: str, at: datetime) -> str:
    resp = await client.get(
        f"{API}/wallets/{wallet_id}/balance", params={"at": at.isoformat()}, headers=admin.headers
    )
    body = await resp.json()
    assert resp.status == 200, body
    assert body["wallet_id"] == wallet_id and body["currency"] == "INR"
    assert body["held"] == "0.00"
    return str(body["balance"])


def _instant(entry: dict[str, Any]) -> datetime:
    return datetime.fromisoformat(entry["created_at"])


@pytest_asyncio.fixture
async def history(client: TestClient, engine: Engine) -> tuple[Account, str, list[datetime]]:
    """A wallet credited 1.00, then 2.50, then debited 0.50, in three postings."""
    admin = await signup(client)
    system = await system_wallet(client, admin.token)
    wallet = await create_wallet(client, admin.token)
    post_transfer(engine, system["id"], wallet["id"], 100)
    post_transfer(engine, system["id"], wallet["id"], 250)
    post_transfer(engine, wallet["id"], system["id"], 50)
    instants = [_instant(e) for e in await _entries(client, admin, wallet["id"])]
    assert instants == sorted(instants) and len(set(instants)) == 3
    return admin, wallet["id"], instants


async def test_between_two_entries(client: TestClient, history: Any) -> None:
    admin, wallet_id, (first, second, third) = history
    assert await _balance_at(client, admin, wallet_id, second + (third - second) / 2) == "3.50"
    assert await _balance_at(client, admin, wallet_id, first + (second - first) / 2) == "1.00"


async def test_at_the_exact_instant_of_an_entry(client: TestClient, history: Any) -> None:
    admin, wallet_id, (first, second, third) = history
    assert await _balance_at(client, admin, wallet_id, first) == "1.00"
    assert await _balance_at(client, admin, wallet_id, second) == "3.50"
    assert await _balance_at(client, admin, wallet_id, third) == "3.00"


async def test_before_the_first_entry_is_zero(client: TestClient, history: Any) -> None:
    admin, wallet_id, (first, _, _) = history
    assert await _balance_at(client, admin, wallet_id, first - timedelta(microseconds=1)) == "0.00"
    assert await _balance_at(client, admin, wallet_id, first - timedelta(days=3650)) == "0.00"


async def test_in_the_future_is_the_current_balance(client: TestClient, history: Any) -> None:
    admin, wallet_id, (_, _, third) = history
    assert await _balance_at(client, admin, wallet_id, third + timedelta(days=365)) == "3.00"
    resp = await client.get(f"{API}/wallets/{wallet_id}", headers=admin.headers)
    assert (await resp.json())["balance"] == "3.00"


async def test_without_an_instant_is_the_current_balance(client: TestClient, history: Any) -> None:
    admin, wallet_id, _ = history
    resp = await client.get(f"{API}/wallets/{wallet_id}/balance", headers=admin.headers)
    assert resp.status == 200 and (await resp.json())["balance"] == "3.00"


async def test_refuses_a_naive_or_garbled_instant(client: TestClient, history: Any) -> None:
    admin, wallet_id, _ = history
    for params in ({"at": "2026-01-01T00:00:00"}, {"at": "yesterday"}):
        resp = await client.get(
            f"{API}/wallets/{wallet_id}/balance", params=params, headers=admin.headers
        )
        await expect_problem(resp, 422, "validation_error")


async def test_another_organizations_wallet_is_not_found(client: TestClient, history: Any) -> None:
    _, wallet_id, (first, _, _) = history
    stranger = await signup(client)
    resp = await client.get(
        f"{API}/wallets/{wallet_id}/balance",
        params={"at": first.isoformat()},
        headers=stranger.headers,
    )
    await expect_problem(resp, 404, "not_found")


async def test_a_member_reads_only_their_own_wallets_history(
    client: TestClient, history: Any
) -> None:
    admin, wallet_id, _ = history
    member = await add_user(client, admin.token)
    own = await create_wallet(client, member.token)
    for path in (f"/wallets/{wallet_id}/balance", f"/wallets/{wallet_id}/statement"):
        resp = await client.get(f"{API}{path}", headers=member.headers)
        await expect_problem(resp, 403, "forbidden")
    resp = await client.get(f"{API}/wallets/{own['id']}/balance", headers=member.headers)
    assert resp.status == 200 and (await resp.json())["balance"] == "0.00"


async def test_held_is_what_open_holds_reserve_now(
    client: TestClient, engine: Engine, history: Any
) -> None:
    admin, wallet_id, (first, _, _) = history
    system = await system_wallet(client, admin.token)
    resp = await client.post(
        f"{API}/transactions/transfer",
        json={
            "source_wallet_id": wallet_id,
            "destination_wallet_id": system["id"],
            "amount": "1.25",
            "currency": "INR",
            "hold": True,
        },
        headers=admin.headers | {"Idempotency-Key": uuid.uuid4().hex},
    )
    assert resp.status == 202, await resp.text()
    drain(engine)
    resp = await client.get(f"{API}/wallets/{wallet_id}/balance", headers=admin.headers)
    body = await resp.json()
    assert (body["balance"], body["held"]) == ("3.00", "1.25")
    resp = await client.get(
        f"{API}/wallets/{wallet_id}/balance",
        params={"at": first.isoformat()},
        headers=admin.headers,
    )
    assert (await resp.json())["held"] == "0.00"


async def test_a_posting_that_began_first_but_locked_second_comes_later_in_history(
    client: TestClient, engine: Engine
) -> None:
    """The wallet's entries have one order: a posting whose transaction began before another's
    but locked the wallet after it is later by instant as by id, so the running balances,
    the balance at an instant and a statement all agree."""
    admin = await signup(client)
    system = await system_wallet(client, admin.token)
    wallet = await create_wallet(client, admin.token)
    with engine.connect() as early:
        early.execute(text("SELECT 1"))  # its transaction (and `now()`) starts here
        post_transfer(engine, system["id"], wallet["id"], 100)  # begins later, commits first
        pending_transfer(engine, system["id"], wallet["id"], 250)
        assert post_batch(early, 1000).completed == 1
        early.commit()
    first, second = sorted(await _entries(client, admin, wallet["id"]), key=lambda e: e["id"])
    assert (first["balance_after"], second["balance_after"]) == ("1.00", "3.50")
    assert _instant(first) < _instant(second)
    just_before = _instant(second) - timedelta(microseconds=1)
    assert await _balance_at(client, admin, wallet["id"], just_before) == "1.00"
    assert await _balance_at(client, admin, wallet["id"], _instant(second)) == "3.50"
    resp = await client.get(f"{API}/wallets/{wallet['id']}/statement", headers=admin.headers)
    statement = await resp.json()
    assert [e["id"] for e in statement["data"]] == [first["id"], second["id"]]
    assert statement["closing_balance"] == "3.50"
