"""API keys: created by an admin, shown once, stored as a hash, used as a bearer, revoked."""

from __future__ import annotations

import hashlib

import pytest
from aiohttp.test_utils import TestClient
from sqlalchemy import Engine, text

from tests.support.api import (
    API,
    add_user,
    auth_headers,
    create_api_key,
    create_wallet,
    expect_problem,
    signup,
)

pytestmark = pytest.mark.asyncio


async def test_a_key_is_shown_once_and_stored_only_as_a_hash(
    client: TestClient, engine: Engine
) -> None:
    admin = await signup(client)
    created = await create_api_key(client, admin.token, ["wallets:read", "transfers:read"])
    assert created["key"].startswith("vk_") and created["prefix"] == created["key"][:11]
    assert created["scopes"] == ["transfers:read", "wallets:read"]
    assert created["expires_at"] is None and created["revoked_at"] is None
    listed = await client.get(f"{API}/api-keys", headers=admin.headers)
    text_ = await listed.text()
    assert created["id"] in text_ and created["key"][11:] not in text_
    assert "key" not in (await listed.json())["data"][0]
    with engine.connect() as conn:
        stored = conn.execute(
            text("SELECT secret_hash FROM api_keys WHERE id = :id"), {"id": created["id"]}
        ).scalar_one()
    secret = created["key"][3 + 32 :]
    assert bytes(stored) == hashlib.sha256(secret.encode()).digest()


async def test_only_admins_manage_keys(client: TestClient) -> None:
    admin = await signup(client)
    member = await add_user(client, admin.token)
    resp = await client.post(
        f"{API}/api-keys", json={"name": "x", "scopes": ["admin"]}, headers=member.headers
    )
    await expect_problem(resp, 403, "forbidden")
    await expect_problem(
        await client.get(f"{API}/api-keys", headers=member.headers), 403, "forbidden"
    )


@pytest.mark.parametrize(
    "body",
    [
        {"name": "x", "scopes": []},
        {"name": "x", "scopes": ["transfers:delete"]},
        {"name": "x", "scopes": ["admin"], "expires_at": "2001-01-01T00:00:00Z"},
        {"name": "x", "scopes": ["admin"], "expires_at": "2099-01-01T00:00:00"},
        {"name": "x", "scopes": ["admin"], "rate_limit_burst": 5},
        {"name": "x", "scopes": ["admin"], "rate_limit_per_s": 0},
        {"name": "", "scopes": ["admin"]},
    ],
)
async def test_bad_key_requests_are_refused_and_write_nothing(
    client: TestClient, engine: Engine, body: dict[str, object]
) -> None:
    admin = await signup(client)
    resp = await client.post(f"{API}/api-keys", json=body, headers=admin.headers)
    assert resp.status == 422, await resp.text()
    with engine.connect() as conn:
        count = conn.execute(
            text("SELECT count(*) FROM api_keys WHERE organization_id = :o"),
            {"o": admin.org["id"]},
        ).scalar_one()
    assert count == 0


async def test_a_key_acts_for_its_organization_and_is_the_audited_actor(
    client: TestClient, engine: Engine
) -> None:
    admin = await signup(client)
    created = await create_api_key(client, admin.token, ["wallets:write", "wallets:read"])
    wallet = await create_wallet(client, created["key"], currency="INR")
    assert wallet["organization_id"] == admin.org["id"]
    with engine.connect() as conn:
        actor = conn.execute(
            text(
                "SELECT actor_id, details->>'actor_type' FROM audit_logs"
                " WHERE action = 'wallet.created' AND resource_id = :w"
            ),
            {"w": wallet["id"]},
        ).one()
    assert (str(actor[0]), actor[1]) == (created["id"], "api_key")


async def test_last_used_at_is_recorded(client: TestClient, engine: Engine) -> None:
    admin = await signup(client)
    created = await create_api_key(client, admin.token, ["wallets:read"])
    for _ in range(3):
        resp = await client.get(f"{API}/wallets", headers=auth_headers(created["key"]))
        assert resp.status == 200
    listed = await (await client.get(f"{API}/api-keys", headers=admin.headers)).json()
    assert listed["data"][0]["last_used_at"] is not None


async def test_a_revoked_key_is_refused_at_once(client: TestClient) -> None:
    admin = await signup(client)
    created = await create_api_key(client, admin.token, ["wallets:read"])
    headers = auth_headers(created["key"])
    assert (await client.get(f"{API}/wallets", headers=headers)).status == 200
    resp = await client.delete(f"{API}/api-keys/{created['id']}", headers=admin.headers)
    assert resp.status == 204
    await expect_problem(await client.get(f"{API}/wallets", headers=headers), 401, "unauthorized")
    listed = await (await client.get(f"{API}/api-keys", headers=admin.headers)).json()
    assert listed["data"][0]["revoked_at"] is not None


async def test_a_key_cannot_change_a_password(client: TestClient) -> None:
    admin = await signup(client)
    key = (await create_api_key(client, admin.token, ["admin"]))["key"]
    resp = await client.post(
        f"{API}/auth/password",
        json={"current_password": "correct horse battery", "new_password": "another long one"},
        headers=auth_headers(key),
    )
    await expect_problem(resp, 403, "forbidden")


async def _patch_user(
    client: TestClient, token: str, user_id: str, body: dict[str, object]
) -> None:
    resp = await client.patch(f"{API}/users/{user_id}", json=body, headers=auth_headers(token))
    assert resp.status == 200, await resp.text()


@pytest.mark.parametrize(
    ("change", "reason"),
    [({"is_active": False}, "creator_deactivated"), ({"role": "MEMBER"}, "creator_not_admin")],
)
async def test_keys_end_when_their_creator_stops_being_an_active_admin(
    client: TestClient, engine: Engine, change: dict[str, object], reason: str
) -> None:
    """A key acts with its creator's authority: deactivating or demoting them revokes it."""
    owner = await signup(client)
    creator = await add_user(client, owner.token, role="ADMIN")
    theirs = await create_api_key(client, creator.token, ["wallets:read"])
    others = await create_api_key(client, owner.token, ["wallets:read"])
    assert (await client.get(f"{API}/wallets", headers=auth_headers(theirs["key"]))).status == 200

    await _patch_user(client, owner.token, creator.user["id"], change)

    resp = await client.get(f"{API}/wallets", headers=auth_headers(theirs["key"]))
    await expect_problem(resp, 401, "unauthorized")
    assert (await client.get(f"{API}/wallets", headers=auth_headers(others["key"]))).status == 200
    listed = await (await client.get(f"{API}/api-keys", headers=owner.headers)).json()
    revoked = {k["id"]: k["revoked_at"] is not None for k in listed["data"]}
    assert revoked == {theirs["id"]: True, others["id"]: False}
    with engine.connect() as conn:
        audited = conn.execute(
            text(
                "SELECT details->>'reason' FROM audit_logs"
                " WHERE action = 'api_key.revoked' AND resource_id = :k"
            ),
            {"k": theirs["id"]},
        ).scalar_one()
    assert audited == reason

    await _patch_user(client, owner.token, creator.user["id"], {"is_active": True, "role": "ADMIN"})
    resp = await client.get(f"{API}/wallets", headers=auth_headers(theirs["key"]))
    await expect_problem(resp, 401, "unauthorized")  # revocation is final


async def test_a_key_of_a_creator_deactivated_behind_the_api_is_refused(
    client: TestClient, engine: Engine
) -> None:
    """Keys of users deactivated before keys were revoked with them (older data) are refused."""
    owner = await signup(client)
    creator = await add_user(client, owner.token, role="ADMIN")
    key = await create_api_key(client, creator.token, ["wallets:read"])
    with engine.begin() as conn:
        conn.execute(
            text("UPDATE users SET is_active = false WHERE id = :u"), {"u": creator.user["id"]}
        )
    resp = await client.get(f"{API}/wallets", headers=auth_headers(key["key"]))
    await expect_problem(resp, 401, "unauthorized")
