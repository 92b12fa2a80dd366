"""Every authenticated route refuses every kind of bad token with `401`, and writes nothing."""

from __future__ import annotations

import uuid

import pytest
from aiohttp.test_utils import TestClient

from gateway.state import ROUTES
from tests.support.api import signup
from tests.support.fixtures import JWT_SECRET
from tests.support.tokens import bad_authorizations

pytestmark = pytest.mark.asyncio


async def test_every_authenticated_route_refuses_bad_tokens(client: TestClient) -> None:
    account = await signup(client)
    app = client.app
    assert app is not None
    routes = [spec for spec in app[ROUTES] if spec.auth]
    bad = bad_authorizations(JWT_SECRET, account.user["id"], account.token)
    wrong = []
    for spec in routes:
        path = spec.full_path
        for name in spec.path_params:
            path = path.replace(f"{{{name}}}", str(uuid.uuid4()))
        for what, headers in bad.items():
            resp = await client.request(
                spec.method,
                path,
                json={},
                headers={**headers, "Idempotency-Key": str(uuid.uuid4())},
            )
            body = await resp.json(content_type=None)
            if resp.status != 401 or body.get("code") != "unauthorized":
                wrong.append(f"{spec.method} {path} with {what}: {resp.status} {body}")
            elif not resp.headers.get("WWW-Authenticate", "").startswith("Bearer"):
                wrong.append(f"{spec.method} {path} with {what}: no WWW-Authenticate")
    assert len(routes) >= 15 and wrong == []
