"""Helpers for tests that drive the gateway over HTTP.

Use the `client` fixture (see `tests/support/fixtures.py`) and these helpers::

    async def test_something(client: TestClient) -> None:
        admin = await signup(client)                      # new org, its ADMIN, a token
        member = await add_user(client, admin.token)      # a MEMBER of the same org
        rival = await signup(client)                      # another organization
        wallet = await create_wallet(client, member.token, type="PRIMARY")
        resp = await client.get(f"{API}/wallets/{wallet['id']}", headers=rival.headers)
        await expect_problem(resp, 404, "not_found")      # checks the problem shape too

Every helper asserts its own request succeeded, so a failing setup reads as such.
"""

from __future__ import annotations

import uuid
from typing import Any, NamedTuple

from aiohttp import ClientResponse
from aiohttp.test_utils import TestClient

API = "/api/v1"
PASSWORD = "correct horse battery"


class Account(NamedTuple):
    """A signed-in user: unpacks as `(token, org, user)` with the API's JSON for each."""

    token: str
    org: dict[str, Any]
    user: dict[str, Any]

    @property
    def headers(self) -> dict[str, str]:
        return auth_headers(self.token)


def auth_headers(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def unique_email(prefix: str = "user") -> str:
    return f"{prefix}-{uuid.uuid4().hex[:12]}@example.com"


async def signup(
    client: TestClient,
    *,
    email: str | None = None,
    password: str = PASSWORD,
    currency: str | None = None,
    organization_name: str = "Acme Payments",
) -> Account:
    """Sign up a new organization; returns its ADMIN's token, the org and the user."""
    body: dict[str, Any] = {
        "email": email or unique_email("admin"),
        "password": password,
        "full_name": "Ada Admin",
        "organization_name": organization_name,
    }
    if currency is not None:
        body["default_currency"] = currency
    resp = await client.post(f"{API}/auth/signup", json=body)
    data = await _expect(resp, 201)
    return Account(data["access_token"], data["organization"], data["user"])


async def login(client: TestClient, email: str, password: str = PASSWORD) -> str:
    resp = await client.post(f"{API}/auth/login", json={"email": email, "password": password})
    data = await _expect(resp, 200)
    return str(data["access_token"])


async def add_user(
    client: TestClient, admin_token: str, *, role: str = "MEMBER", password: str = PASSWORD
) -> Account:
    """An admin adds a user to their organization; returns the new user signed in."""
    email = unique_email(role.lower())
    resp = await client.post(
        f"{API}/users",
        json={"email": email, "password": password, "full_name": "Max Member", "role": role},
        headers=auth_headers(admin_token),
    )
    user = await _expect(resp, 201)
    token = await login(client, email, password)
    me = await _expect(
        await client.get(f"{API}/organizations/me", headers=auth_headers(token)), 200
    )
    return Account(token, me, user)


async def create_wallet(client: TestClient, token: str, **body: Any) -> dict[str, Any]:
    """Open a wallet (`type="PRIMARY"` unless given) and return its JSON."""
    body.setdefault("type", "PRIMARY")
    resp = await client.post(f"{API}/wallets", json=body, headers=auth_headers(token))
    return await _expect(resp, 201)


async def system_wallet(
    client: TestClient, admin_token: str, currency: str = "INR"
) -> dict[str, Any]:
    """The organization's SYSTEM wallet in `currency` (signup creates one)."""
    resp = await client.get(
        f"{API}/wallets",
        params={"type": "SYSTEM", "currency": currency},
        headers=auth_headers(admin_token),
    )
    data = await _expect(resp, 200)
    assert len(data["data"]) == 1, data
    return dict(data["data"][0])


async def create_api_key(
    client: TestClient, admin_token: str, scopes: list[str], **body: Any
) -> dict[str, Any]:
    """An admin creates an API key; its JSON, with the whole key in `key`."""
    body = {"name": "test key", "scopes": scopes, **body}
    resp = await client.post(f"{API}/api-keys", json=body, headers=auth_headers(admin_token))
    return await _expect(resp, 201)


async def expect_problem(resp: ClientResponse, status: int, code: str) -> dict[str, Any]:
    """Assert `resp` is an RFC 9457 problem with this status and code; return its body."""
    text = await resp.text()
    assert resp.status == status, f"expected {status} {code}, got {resp.status}: {text}"
    assert resp.content_type == "application/problem+json", resp.content_type
    body: dict[str, Any] = await resp.json(content_type=None)
    assert body["code"] == code, body
    assert body["status"] == status
    assert {"type", "title", "detail", "errors"} <= body.keys()
    assert resp.headers.get("X-Request-ID")
    return body


async def _expect(resp: ClientResponse, status: int) -> dict[str, Any]:
    text = await resp.text()
    assert resp.status == status, f"{resp.method} {resp.url.path}: {resp.status} {text}"
    body: dict[str, Any] = await resp.json()
    return body
