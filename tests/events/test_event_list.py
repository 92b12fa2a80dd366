"""GET /events: an admin finds the id of an event to redeliver without a delivery."""

from __future__ import annotations

import pytest
from aiohttp.test_utils import TestClient

from tests.events.test_webhook_routes import _latest_event_id
from tests.support.api import API, add_user, create_wallet, expect_problem, signup

pytestmark = pytest.mark.asyncio


async def test_events_are_listed_filtered_and_paged_per_organization(
    hooks_client: TestClient,
) -> None:
    admin = await signup(hooks_client)
    rival = await signup(hooks_client)
    member = await add_user(hooks_client, admin.token)
    first = await create_wallet(hooks_client, admin.token)
    second = await create_wallet(hooks_client, admin.token)
    for wallet, status in ((first, "LOCKED"), (second, "LOCKED"), (first, "ACTIVE")):
        resp = await hooks_client.patch(
            f"{API}/wallets/{wallet['id']}", json={"status": status}, headers=admin.headers
        )
        assert resp.status == 200, await resp.text()

    about_first = await hooks_client.get(
        f"{API}/events", params={"resource_id": first["id"]}, headers=admin.headers
    )
    events = (await about_first.json())["data"]
    assert [(e["type"], e["data"]["status"]) for e in events] == [
        ("wallet.status_changed", "ACTIVE"),
        ("wallet.status_changed", "LOCKED"),
    ]
    assert events[0]["id"] == await _latest_event_id(hooks_client, admin.headers, first["id"])
    page = await (
        await hooks_client.get(
            f"{API}/events",
            params={"type": "wallet.status_changed", "limit": "2"},
            headers=admin.headers,
        )
    ).json()
    rest = await (
        await hooks_client.get(
            f"{API}/events", params={"cursor": page["next_cursor"]}, headers=admin.headers
        )
    ).json()
    assert len(page["data"]) == 2 and len(rest["data"]) == 1 and rest["next_cursor"] is None
    redeliver = await hooks_client.post(
        f"{API}/events/{rest['data'][0]['id']}/redeliver", headers=admin.headers
    )
    assert redeliver.status == 202
    theirs = await (await hooks_client.get(f"{API}/events", headers=rival.headers)).json()
    assert theirs["data"] == []
    await expect_problem(
        await hooks_client.get(f"{API}/events", headers=member.headers), 403, "forbidden"
    )
