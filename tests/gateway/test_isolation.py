"""Tenant isolation: another organization's ids answer 404 on every route, as if absent."""

from __future__ import annotations

import pytest
from aiohttp.test_utils import TestClient

from tests.support.api import API, add_user, create_wallet, expect_problem, signup, system_wallet

pytestmark = pytest.mark.asyncio


async def test_other_orgs_wallets_and_users_are_not_found(client: TestClient) -> None:
    ours = await signup(client)
    theirs = await signup(client, organization_name="Rival")
    their_member = await add_user(client, theirs.token)
    their_wallet = await create_wallet(client, their_member.token)
    their_system = await system_wallet(client, theirs.token)

    for wallet in (their_wallet, their_system):
        url = f"{API}/wallets/{wallet['id']}"
        await expect_problem(await client.get(url, headers=ours.headers), 404, "not_found")
        resp = await client.patch(url, json={"status": "LOCKED"}, headers=ours.headers)
        await expect_problem(resp, 404, "not_found")

    resp = await client.post(
        f"{API}/wallets",
        json={"type": "PRIMARY", "user_id": their_member.user["id"]},
        headers=ours.headers,
    )
    await expect_problem(resp, 404, "not_found")

    listed = await (await client.get(f"{API}/wallets", headers=ours.headers)).json()
    assert {w["organization_id"] for w in listed["data"]} == {ours.org["id"]}
    resp = await client.get(
        f"{API}/wallets", params={"user_id": their_member.user["id"]}, headers=ours.headers
    )
    assert (await resp.json())["data"] == []

    users = await (await client.get(f"{API}/users", headers=ours.headers)).json()
    assert [u["id"] for u in users["data"]] == [ours.user["id"]]

    summary = await (await client.get(f"{API}/wallets/summary", headers=ours.headers)).json()
    assert summary["data"][0]["wallets_by_status"]["ACTIVE"] == 1  # only our SYSTEM wallet

    org = await (await client.get(f"{API}/organizations/me", headers=ours.headers)).json()
    assert org["id"] == ours.org["id"]

    # Their wallet is untouched by our attempts.
    resp = await client.get(f"{API}/wallets/{their_wallet['id']}", headers=theirs.headers)
    assert (await resp.json())["status"] == "ACTIVE"


async def test_a_member_reaching_for_a_colleagues_wallet_is_forbidden(
    client: TestClient,
) -> None:
    admin = await signup(client)
    alice = await add_user(client, admin.token)
    bob = await add_user(client, admin.token)
    bobs = await create_wallet(client, bob.token)
    url = f"{API}/wallets/{bobs['id']}"
    await expect_problem(await client.get(url, headers=alice.headers), 403, "forbidden")
    resp = await client.patch(url, json={"status": "LOCKED"}, headers=alice.headers)
    await expect_problem(resp, 403, "forbidden")
