"""Users change role or are deactivated; a password change retires older tokens."""

from __future__ import annotations

import asyncio

import pytest
from aiohttp import ClientResponse
from aiohttp.test_utils import TestClient

from tests.support.api import API, PASSWORD, add_user, auth_headers, expect_problem, login, signup

pytestmark = pytest.mark.asyncio


async def patch_user(
    client: TestClient, token: str, user_id: str, **body: object
) -> ClientResponse:
    return await client.patch(f"{API}/users/{user_id}", json=body, headers=auth_headers(token))


async def test_an_admin_promotes_and_demotes_a_user(client: TestClient) -> None:
    admin = await signup(client)
    member = await add_user(client, admin.token)
    resp = await patch_user(client, admin.token, member.user["id"], role="ADMIN")
    assert resp.status == 200 and (await resp.json())["role"] == "ADMIN"
    listed = await client.get(f"{API}/users", headers=member.headers)
    assert listed.status == 200  # the new role holds at once, on the same token
    resp = await patch_user(client, admin.token, member.user["id"], role="MEMBER")
    assert (await resp.json())["role"] == "MEMBER"
    await expect_problem(await client.get(f"{API}/users", headers=member.headers), 403, "forbidden")


async def test_a_deactivated_users_token_stops_working_at_once(client: TestClient) -> None:
    admin = await signup(client)
    member = await add_user(client, admin.token)
    assert (await client.get(f"{API}/wallets", headers=member.headers)).status == 200
    resp = await patch_user(client, admin.token, member.user["id"], is_active=False)
    assert resp.status == 200 and (await resp.json())["is_active"] is False
    resp = await client.get(f"{API}/wallets", headers=member.headers)
    await expect_problem(resp, 401, "unauthorized")
    resp = await client.post(
        f"{API}/auth/login", json={"email": member.user["email"], "password": PASSWORD}
    )
    await expect_problem(resp, 401, "invalid_credentials")
    await patch_user(client, admin.token, member.user["id"], is_active=True)
    assert (await client.get(f"{API}/wallets", headers=member.headers)).status == 200


async def test_the_last_active_admin_stays(client: TestClient) -> None:
    admin = await signup(client)
    for change in ({"role": "MEMBER"}, {"is_active": False}):
        resp = await patch_user(client, admin.token, admin.user["id"], **change)
        await expect_problem(resp, 409, "last_admin")
    second = await add_user(client, admin.token, role="ADMIN")
    resp = await patch_user(client, admin.token, admin.user["id"], role="MEMBER")
    assert resp.status == 200
    resp = await patch_user(client, second.token, second.user["id"], is_active=False)
    await expect_problem(resp, 409, "last_admin")


async def test_two_admins_demoting_each_other_at_once_leave_one_admin(client: TestClient) -> None:
    for _ in range(5):
        first = await signup(client)
        second = await add_user(client, first.token, role="ADMIN")
        answers = await asyncio.gather(
            patch_user(client, first.token, second.user["id"], role="MEMBER"),
            patch_user(client, second.token, first.user["id"], role="MEMBER"),
        )
        statuses = sorted(r.status for r in answers)
        assert statuses in ([200, 403], [200, 409]), statuses
        users = await (await client.get(f"{API}/users", headers=first.headers)).json()
        if users.get("data") is None:  # `first` lost admin: ask the other one
            users = await (await client.get(f"{API}/users", headers=second.headers)).json()
        admins = [u for u in users["data"] if u["role"] == "ADMIN" and u["is_active"]]
        assert len(admins) == 1


async def test_another_organizations_user_is_not_found(client: TestClient) -> None:
    admin = await signup(client)
    rival = await signup(client)
    resp = await patch_user(client, admin.token, rival.user["id"], role="MEMBER")
    await expect_problem(resp, 404, "not_found")


async def test_a_password_change_retires_older_tokens(client: TestClient) -> None:
    admin = await signup(client)
    older = await login(client, admin.user["email"])
    resp = await client.post(
        f"{API}/auth/password",
        json={"current_password": PASSWORD, "new_password": "a brand new passphrase"},
        headers=admin.headers,
    )
    assert resp.status == 204
    for token in (admin.token, older):
        resp = await client.get(f"{API}/auth/me", headers=auth_headers(token))
        await expect_problem(resp, 401, "unauthorized")
    newer = await login(client, admin.user["email"], "a brand new passphrase")
    assert (await client.get(f"{API}/auth/me", headers=auth_headers(newer))).status == 200
    resp = await client.post(
        f"{API}/auth/login", json={"email": admin.user["email"], "password": PASSWORD}
    )
    await expect_problem(resp, 401, "invalid_credentials")


async def test_a_wrong_current_password_changes_nothing(client: TestClient) -> None:
    admin = await signup(client)
    resp = await client.post(
        f"{API}/auth/password",
        json={"current_password": "not my password", "new_password": "a brand new passphrase"},
        headers=admin.headers,
    )
    await expect_problem(resp, 422, "wrong_password")
    assert (await client.get(f"{API}/auth/me", headers=admin.headers)).status == 200


async def test_an_empty_change_answers_the_user_unchanged(client: TestClient) -> None:
    admin = await signup(client)
    member = await add_user(client, admin.token)
    resp = await patch_user(client, admin.token, member.user["id"])
    assert resp.status == 200
    assert await resp.json() == member.user
