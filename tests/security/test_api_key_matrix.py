"""API keys over every registered route, generated from the app's route table.

Each scope's key against each authenticated route: outside its scope `403
insufficient_scope` and nothing written, inside it never refused for its scope. Then the
keys that are no keys at all: revoked, expired, malformed, another secret, another
organization's.
"""

from __future__ import annotations

import hmac
import uuid
from typing import Any

import pytest
import pytest_asyncio
from aiohttp.test_utils import TestClient
from sqlalchemy import Engine, text

from gateway.registry import RouteSpec
from ledger_core import api_keys as key_format
from ledger_core.api_keys import Scope
from tests.security.test_isolation_matrix import call, snapshot
from tests.security.world import Side, World, build_world
from tests.support.api import API, Account, auth_headers, create_api_key, expect_problem

pytestmark = pytest.mark.asyncio

SCOPES = tuple(scope.value for scope in Scope)


def key_side(world: World, key: str) -> Side:
    """Our organization's ids, called with an API key instead of the admin's token."""
    return Side(Account(key, world.ours.account.org, world.ours.account.user), world.ours.ids)


@pytest_asyncio.fixture
async def world(client: TestClient, engine: Engine) -> World:
    return await build_world(client, engine)


async def keys_by_scope(world: World) -> dict[str, str]:
    """A key per scope; `DELETE /api-keys/{key_id}` is pointed at a key of its own."""
    token = world.ours.account.token
    world.ours.ids["key_id"] = (await create_api_key(world.client, token, ["admin"]))["id"]
    return {s: (await create_api_key(world.client, token, [s]))["key"] for s in SCOPES}


def granted(scope: str, spec: RouteSpec) -> bool:
    return scope in (spec.scope, "admin")


async def test_every_route_declares_a_known_scope(world: World) -> None:
    assert {spec.scope for spec in world.routes} <= set(SCOPES)
    scoped = {spec.full_path: spec.scope for spec in world.routes if spec.scope != "admin"}
    assert scoped[f"{API}/transactions/transfer"] == "transfers:write"
    assert scoped[f"{API}/wallets/{{wallet_id}}/entries"] == "wallets:read"


async def test_a_key_outside_its_scope_is_refused_on_every_route(
    world: World, engine: Engine
) -> None:
    keys = await keys_by_scope(world)
    before = snapshot(engine, world)
    wrong, checked = [], 0
    for spec in world.routes:
        for scope, key in keys.items():
            if granted(scope, spec):
                continue
            side = key_side(world, key)
            for path in world.paths(spec, side):
                checked += 1
                status, body = await call(world, spec, path, side, world.body(spec, side))
                if status != 403 or '"insufficient_scope"' not in body:
                    wrong.append(f"{scope} {spec.method} {path}: {status} {body[:160]}")
    assert checked > 100 and wrong == []
    assert snapshot(engine, world) == before


async def test_a_key_inside_its_scope_is_let_through_on_every_route(world: World) -> None:
    keys = await keys_by_scope(world)
    wrong = []
    for spec in world.routes:
        for scope, key in keys.items():
            if not granted(scope, spec):
                continue
            side = key_side(world, key)
            for path in world.paths(spec, side):
                status, body = await call(world, spec, path, side, world.body(spec, side))
                if status in (401, 500) or '"insufficient_scope"' in body:
                    wrong.append(f"{scope} {spec.method} {path}: {status} {body[:160]}")
    assert wrong == []


async def test_the_openapi_document_shows_each_routes_scope(client: TestClient) -> None:
    document = await (await client.get(f"{API}/openapi.json")).json()
    operation = document["paths"][f"{API}/transactions/transfer"]["post"]
    assert operation["x-api-key-scope"] == "transfers:write"
    assert operation["security"] == [{"bearerAuth": ["transfers:write"]}]
    assert "vk_" in document["components"]["securitySchemes"]["bearerAuth"]["description"]


async def bad_keys(world: World, engine: Engine) -> dict[str, str]:
    token = world.ours.account.token
    revoked = await create_api_key(world.client, token, ["admin"])
    resp = await world.client.delete(f"{API}/api-keys/{revoked['id']}", headers=auth_headers(token))
    assert resp.status == 204
    expired = await create_api_key(world.client, token, ["admin"])
    with engine.begin() as conn:
        conn.execute(
            text("UPDATE api_keys SET expires_at = now() - interval '1 second' WHERE id = :id"),
            {"id": expired["id"]},
        )
    good = (await create_api_key(world.client, token, ["admin"]))["key"]
    other_secret = good[: -len(key_format.new_secret())] + key_format.new_secret()
    return {
        "revoked": revoked["key"],
        "expired": expired["key"],
        "other secret": other_secret,
        "unknown id": key_format.compose(uuid.uuid4(), key_format.new_secret()),
        "truncated": good[:-1],
        "not hex": "vk_" + "z" * 32 + good[35:],
        "prefix only": "vk_",
        "non-ascii": good[:-1] + "é",
    }


async def test_revoked_expired_and_malformed_keys_are_unauthorized(
    world: World, engine: Engine
) -> None:
    keys = await bad_keys(world, engine)
    for name, key in keys.items():
        resp = await world.client.get(f"{API}/wallets", headers=auth_headers(key))
        body = await expect_problem(resp, 401, "unauthorized")
        assert key not in str(body), name


async def test_a_key_acts_only_for_its_own_organization(world: World) -> None:
    rival_key = (await create_api_key(world.client, world.rival.account.token, ["admin"]))["key"]
    wallet = world.ours.ids["wallet_id"]
    resp = await world.client.get(f"{API}/wallets/{wallet}", headers=auth_headers(rival_key))
    await expect_problem(resp, 404, "not_found")
    listed = await (
        await world.client.get(f"{API}/api-keys", headers=auth_headers(rival_key))
    ).json()
    assert listed["data"] and all(k["name"] == "test key" for k in listed["data"])
    ours = await world.client.get(f"{API}/api-keys", headers=world.ours.headers)
    assert rival_key[3:35] not in await ours.text()


async def test_secrets_are_compared_in_constant_time(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    compared: list[tuple[Any, Any]] = []
    real = hmac.compare_digest

    def spy(a: Any, b: Any) -> bool:
        compared.append((a, b))
        return real(a, b)

    monkeypatch.setattr(key_format.hmac, "compare_digest", spy)
    key = (await create_api_key(world.client, world.ours.account.token, ["admin"]))["key"]
    wrong = key[:-4] + ("AAAA" if not key.endswith("AAAA") else "BBBB")
    for presented, status in ((wrong, 401), (key, 200)):
        resp = await world.client.get(f"{API}/wallets", headers=auth_headers(presented))
        assert resp.status == status
    assert len(compared) == 2 and all(len(a) == len(b) == 32 for a, b in compared)
