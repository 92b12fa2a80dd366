"""One style across the API: field paths in problems, `Location` on creations."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import pytest
from aiohttp.test_utils import TestClient

from tests.support.api import API, create_wallet, expect_problem, signup, system_wallet

pytestmark = pytest.mark.asyncio


async def test_batch_items_are_named_alike_by_the_body_check_and_the_amount_check(
    client: TestClient,
) -> None:
    admin = await signup(client)
    source = await system_wallet(client, admin.token)
    target = await create_wallet(client, admin.token)
    item = {
        "source_wallet_id": source["id"],
        "destination_wallet_id": target["id"],
        "amount": "1.00",
        "currency": "INR",
    }
    shape = [{**item, "idempotency_key": "a"}, {**item, "idempotency_key": "b", "currency": "X"}]
    places = [{**item, "idempotency_key": "c"}, {**item, "idempotency_key": "d", "amount": "1.001"}]
    resp = await client.post(
        f"{API}/transactions/batch", json={"transfers": shape}, headers=admin.headers
    )
    by_shape = await expect_problem(resp, 422, "invalid_currency")
    resp = await client.post(
        f"{API}/transactions/batch", json={"transfers": places}, headers=admin.headers
    )
    by_places = await expect_problem(resp, 422, "invalid_amount")
    assert [e["field"] for e in by_shape["errors"]] == ["transfers[1].currency"]
    assert [e["field"] for e in by_places["errors"]] == ["transfers[1].amount"]


async def test_every_creation_says_where_to_read_it(client: TestClient) -> None:
    admin = await signup(client)
    resp = await client.post(f"{API}/wallets", json={"type": "BONUS"}, headers=admin.headers)
    assert resp.status == 201
    assert resp.headers["Location"] == f"{API}/wallets/{(await resp.json())['id']}"
    resp = await client.post(
        f"{API}/risk-rules",
        json={"kind": "MAX_AMOUNT", "currency": "INR", "max_amount": "100.00"},
        headers=admin.headers,
    )
    assert resp.status == 201
    location = resp.headers["Location"]
    assert location == f"{API}/risk-rules/{(await resp.json())['id']}"
    assert (await client.get(location, headers=admin.headers)).status == 200
    resp = await client.post(
        f"{API}/users",
        json={
            "email": f"loc-{uuid.uuid4().hex}@example.com",
            "password": "long enough secret",
            "full_name": "Mem Ber",
            "role": "MEMBER",
        },
        headers=admin.headers,
    )
    assert resp.status == 201
    user_location = resp.headers["Location"]
    assert user_location == f"{API}/users/{(await resp.json())['id']}"
    read = await client.get(user_location, headers=admin.headers)
    assert await read.json() == await resp.json()
    other = await signup(client)
    resp = await client.post(
        f"{API}/counterparties", json={"organization_id": other.org["id"]}, headers=admin.headers
    )
    assert resp.status == 201
    assert resp.headers["Location"] == f"{API}/counterparties/{other.org['id']}"
    read = await client.get(resp.headers["Location"], headers=admin.headers)
    assert await read.json() == await resp.json()
    await expect_problem(
        await client.get(f"{API}/counterparties/{admin.org['id']}", headers=admin.headers),
        404,
        "not_found",
    )
    await expect_problem(await client.get(user_location, headers=other.headers), 404, "not_found")
    resp = await client.post(
        f"{API}/auth/signup",
        json={
            "email": f"loc-{uuid.uuid4().hex}@example.com",
            "password": "long enough secret",
            "full_name": "Lo Cation",
            "organization_name": "Location Ltd",
        },
    )
    assert resp.status == 201 and resp.headers["Location"] == f"{API}/auth/me"


async def test_every_time_filter_needs_an_offset(client: TestClient) -> None:
    """One rule for `from`/`to`: RFC 3339 with an offset everywhere, never a local time."""
    admin = await signup(client)
    wallet = await create_wallet(client, admin.token)
    paths = (
        "/transactions",
        f"/wallets/{wallet['id']}/entries",
        "/audit-logs",
        "/analytics/volume",
    )
    yesterday = (datetime.now(UTC) - timedelta(days=1)).strftime("%Y-%m-%dT%H:%M:%S")
    codes = set()
    for path in paths:
        naive = await client.get(f"{API}{path}", params={"from": yesterday}, headers=admin.headers)
        problem = await expect_problem(naive, 422, "validation_error")
        assert [e["field"] for e in problem["errors"]] == ["from"], path
        codes.add(problem["code"])
        aware = await client.get(
            f"{API}{path}", params={"from": yesterday + "+05:30"}, headers=admin.headers
        )
        assert aware.status == 200, (path, await aware.text())
    assert codes == {"validation_error"}


async def test_transfers_are_found_by_the_idempotency_key_they_were_sent_with(
    client: TestClient,
) -> None:
    admin = await signup(client)
    rival = await signup(client)
    source = await system_wallet(client, admin.token)
    target = await create_wallet(client, admin.token)
    body = {
        "source_wallet_id": source["id"],
        "destination_wallet_id": target["id"],
        "amount": "2.00",
        "currency": "INR",
    }
    sent = {}
    for key in ("order-1", "order-2"):
        resp = await client.post(
            f"{API}/transactions/transfer",
            json=body,
            headers={**admin.headers, "Idempotency-Key": key},
        )
        assert resp.status == 202
        sent[key] = (await resp.json())["id"]

    async def found(headers: dict[str, str], key: str) -> list[str]:
        resp = await client.get(
            f"{API}/transactions", params={"idempotency_key": key}, headers=headers
        )
        assert resp.status == 200
        return [t["id"] for t in (await resp.json())["data"]]

    assert await found(admin.headers, "order-1") == [sent["order-1"]]
    assert await found(admin.headers, "order-3") == []
    assert await found(rival.headers, "order-1") == []
