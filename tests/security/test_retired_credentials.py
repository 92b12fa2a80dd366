"""Every authenticated route refuses a deactivated user's token, a token older than a
password change, and a revoked key, with `401`, and writes nothing."""

from __future__ import annotations

import uuid

import pytest
from aiohttp.test_utils import TestClient
from sqlalchemy import Engine, text

from gateway.state import ROUTES
from tests.support.api import API, PASSWORD, add_user, auth_headers, create_api_key, signup

pytestmark = pytest.mark.asyncio


def writes(engine: Engine) -> int:
    with engine.connect() as conn:
        return int(
            conn.execute(
                text(
                    "SELECT (SELECT count(*) FROM wallets) + (SELECT count(*) FROM transactions)"
                    " + (SELECT count(*) FROM users) + (SELECT count(*) FROM api_keys)"
                )
            ).scalar_one()
        )


async def retired_credentials(client: TestClient) -> dict[str, str]:
    admin = await signup(client)
    deactivated = await add_user(client, admin.token, role="ADMIN")
    resp = await client.patch(
        f"{API}/users/{deactivated.user['id']}", json={"is_active": False}, headers=admin.headers
    )
    assert resp.status == 200
    changed = await add_user(client, admin.token, role="ADMIN")
    resp = await client.post(
        f"{API}/auth/password",
        json={"current_password": PASSWORD, "new_password": "a brand new passphrase"},
        headers=changed.headers,
    )
    assert resp.status == 204
    key = await create_api_key(client, admin.token, ["admin"])
    resp = await client.delete(f"{API}/api-keys/{key['id']}", headers=admin.headers)
    assert resp.status == 204
    return {
        "deactivated user": deactivated.token,
        "before password change": changed.token,
        "revoked key": key["key"],
    }


async def test_every_route_refuses_retired_credentials(client: TestClient, engine: Engine) -> None:
    retired = await retired_credentials(client)
    app = client.app
    assert app is not None
    before = writes(engine)
    wrong = []
    for spec in (s for s in app[ROUTES] if s.auth):
        path = spec.full_path
        for name in spec.path_params:
            path = path.replace(f"{{{name}}}", str(uuid.uuid4()))
        for what, token in retired.items():
            headers = {**auth_headers(token), "Idempotency-Key": str(uuid.uuid4())}
            resp = await client.request(spec.method, path, json={}, headers=headers)
            body = await resp.json(content_type=None)
            if resp.status != 401 or body.get("code") != "unauthorized":
                wrong.append(f"{spec.method} {path} with {what}: {resp.status} {body}")
    assert wrong == []
    assert writes(engine) == before
