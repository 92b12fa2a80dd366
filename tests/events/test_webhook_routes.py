"""The webhook API: registration rules, secrets shown once, tenancy, and SSRF refusals."""

from __future__ import annotations

from typing import Any

import pytest
from aiohttp.test_utils import TestClient
from sqlalchemy import text

from gateway.state import ENGINE
from tests.support.api import API, add_user, create_wallet, expect_problem, signup

pytestmark = pytest.mark.asyncio

EVENTS = ["transfer.completed", "wallet.status_changed"]


async def register(client: TestClient, headers: dict[str, str], url: str) -> dict[str, Any]:
    resp = await client.post(
        f"{API}/webhooks", json={"url": url, "events": EVENTS}, headers=headers
    )
    assert resp.status == 201, await resp.text()
    body: dict[str, Any] = await resp.json()
    return body


async def test_secret_is_shown_once_and_never_listed(hooks_client: TestClient) -> None:
    admin = await signup(hooks_client)

    created = await register(hooks_client, admin.headers, "http://127.0.0.1:9/hook")

    assert created["secret"].startswith("whsec_") and len(created["secret"]) > 40
    assert created["events"] == EVENTS and created["is_active"] is True
    resp = await hooks_client.get(f"{API}/webhooks", headers=admin.headers)
    listed = (await resp.json())["data"]
    assert [w["id"] for w in listed] == [created["id"]]
    assert "secret" not in listed[0]
    assert created["secret"] not in await resp.text()


async def test_delete_stops_listing_and_is_404_the_second_time(hooks_client: TestClient) -> None:
    admin = await signup(hooks_client)
    hook = await register(hooks_client, admin.headers, "http://127.0.0.1:9/hook")

    resp = await hooks_client.delete(f"{API}/webhooks/{hook['id']}", headers=admin.headers)

    assert resp.status == 204
    listed = await (await hooks_client.get(f"{API}/webhooks", headers=admin.headers)).json()
    assert listed["data"] == []
    again = await hooks_client.delete(f"{API}/webhooks/{hook['id']}", headers=admin.headers)
    await expect_problem(again, 404, "not_found")
    history = await hooks_client.get(
        f"{API}/webhooks/{hook['id']}/deliveries", headers=admin.headers
    )
    assert history.status == 200  # a deleted endpoint's history stays readable


async def test_members_and_other_organizations_are_refused(hooks_client: TestClient) -> None:
    admin = await signup(hooks_client)
    member = await add_user(hooks_client, admin.token)
    rival = await signup(hooks_client)
    hook = await register(hooks_client, admin.headers, "http://127.0.0.1:9/hook")
    body = {"url": "http://127.0.0.1:9/x", "events": EVENTS}

    await expect_problem(
        await hooks_client.post(f"{API}/webhooks", json=body, headers=member.headers),
        403,
        "forbidden",
    )
    for method, path in [
        ("GET", "/webhooks"),
        ("DELETE", f"/webhooks/{hook['id']}"),
        ("GET", f"/webhooks/{hook['id']}/deliveries"),
    ]:
        resp = await hooks_client.request(method, API + path, headers=member.headers)
        await expect_problem(resp, 403, "forbidden")
    for method, path in [
        ("DELETE", f"/webhooks/{hook['id']}"),
        ("GET", f"/webhooks/{hook['id']}/deliveries"),
    ]:
        resp = await hooks_client.request(method, API + path, headers=rival.headers)
        await expect_problem(resp, 404, "not_found")
    rival_list = await (await hooks_client.get(f"{API}/webhooks", headers=rival.headers)).json()
    assert rival_list["data"] == []


async def test_events_of_another_organization_cannot_be_redelivered(
    hooks_client: TestClient,
) -> None:
    admin = await signup(hooks_client)
    rival = await signup(hooks_client)
    wallet = await create_wallet(hooks_client, admin.token)
    await hooks_client.patch(
        f"{API}/wallets/{wallet['id']}", json={"status": "LOCKED"}, headers=admin.headers
    )
    event_id = await _latest_event_id(hooks_client, admin.headers, wallet["id"])

    resp = await hooks_client.post(f"{API}/events/{event_id}/redeliver", headers=rival.headers)
    await expect_problem(resp, 404, "not_found")
    resp = await hooks_client.post(f"{API}/events/{event_id}/redeliver", headers=admin.headers)
    assert resp.status == 202
    assert (await resp.json()) == {"event_id": event_id, "deliveries": []}  # no endpoints yet


async def _latest_event_id(client: TestClient, headers: dict[str, str], wallet_id: str) -> str:
    """The id of the wallet's latest status-change event, read from the outbox."""
    app = client.app
    assert app is not None
    async with app[ENGINE].connect() as conn:
        found = await conn.scalar(
            text(
                "SELECT event_id FROM outbox WHERE type = 'wallet.status_changed'"
                " AND data->>'id' = :w ORDER BY id DESC LIMIT 1"
            ),
            {"w": wallet_id},
        )
    return str(found)


@pytest.mark.parametrize(
    "body",
    [
        {"url": "https://example.com/h", "events": []},
        {"url": "https://example.com/h", "events": ["transfer.exploded"]},
        {"url": "https://example.com/h", "events": ["transfer.failed", "transfer.failed"]},
        {"url": "https://example.com/h", "events": "transfer.failed"},
        {"url": 5, "events": EVENTS},
        {"url": "https://example.com/h", "events": EVENTS, "secret": "mine"},
        {"events": EVENTS},
    ],
)
async def test_malformed_registrations_are_422(client: TestClient, body: dict[str, Any]) -> None:
    admin = await signup(client)
    resp = await client.post(f"{API}/webhooks", json=body, headers=admin.headers)
    await expect_problem(resp, 422, "validation_error")


@pytest.mark.parametrize(
    "url",
    [
        "https://127.0.0.1/hook",
        "https://localhost/hook",  # a name that resolves to loopback
        "https://10.1.2.3/hook",
        "https://192.168.0.10:8443/hook",
        "https://169.254.169.254/latest/meta-data",
        "https://[::1]/hook",
        "https://[::ffff:127.0.0.1]/hook",
        "https://[fe80::1]/hook",
        "http://example.com/hook",  # plain http
        "https://user:secret@example.com/hook",
        "https://no-such-host.invalid/hook",
        "not a url at all",
    ],
)
async def test_private_and_unsafe_urls_are_refused_at_registration(
    client: TestClient, url: str
) -> None:
    """The default gateway (private targets not allowed) refuses with a clear code."""
    admin = await signup(client)
    resp = await client.post(
        f"{API}/webhooks", json={"url": url, "events": EVENTS}, headers=admin.headers
    )
    problem = await expect_problem(resp, 422, "webhook_url_not_allowed")
    assert problem["errors"][0]["field"] == "url"


async def test_metadata_addresses_are_refused_even_when_private_targets_are_allowed(
    hooks_client: TestClient,
) -> None:
    admin = await signup(hooks_client)
    for url in ("http://169.254.169.254/latest", "http://[fd00:ec2::254]/"):
        resp = await hooks_client.post(
            f"{API}/webhooks", json={"url": url, "events": EVENTS}, headers=admin.headers
        )
        await expect_problem(resp, 422, "webhook_url_not_allowed")


async def test_an_organization_has_at_most_twenty_endpoints(hooks_client: TestClient) -> None:
    admin = await signup(hooks_client)
    for n in range(20):
        await register(hooks_client, admin.headers, f"http://127.0.0.1:9/h{n}")

    resp = await hooks_client.post(
        f"{API}/webhooks",
        json={"url": "http://127.0.0.1:9/h21", "events": EVENTS},
        headers=admin.headers,
    )
    await expect_problem(resp, 409, "too_many_webhooks")
