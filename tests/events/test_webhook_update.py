"""PATCH /webhooks/{id}: change an endpoint's URL, events or activity in place."""

from __future__ import annotations

import pytest
from aiohttp.test_utils import TestClient
from sqlalchemy import text

from gateway.state import ENGINE
from tests.events.test_webhook_routes import EVENTS, register
from tests.support.api import API, add_user, expect_problem, signup

pytestmark = pytest.mark.asyncio


async def test_an_admin_changes_events_and_pauses_an_endpoint(hooks_client: TestClient) -> None:
    admin = await signup(hooks_client)
    resp = await hooks_client.post(
        f"{API}/webhooks",
        json={"url": "http://127.0.0.1:9/hook", "events": EVENTS},
        headers=admin.headers,
    )
    hook = await resp.json()
    path = f"{API}/webhooks/{hook['id']}"
    assert resp.headers["Location"] == path
    read = await (await hooks_client.get(path, headers=admin.headers)).json()
    assert read == {k: v for k, v in hook.items() if k != "secret"}

    resp = await hooks_client.patch(
        path, json={"events": ["transfer.failed"], "is_active": False}, headers=admin.headers
    )

    assert resp.status == 200, await resp.text()
    changed = await resp.json()
    assert (changed["events"], changed["is_active"], changed["url"]) == (
        ["transfer.failed"],
        False,
        hook["url"],
    )
    assert "secret" not in changed
    listed = await (await hooks_client.get(f"{API}/webhooks", headers=admin.headers)).json()
    assert listed["data"] == [changed]
    moved = await hooks_client.patch(
        path, json={"url": "http://127.0.0.1:9/moved", "is_active": True}, headers=admin.headers
    )
    assert (await moved.json())["url"] == "http://127.0.0.1:9/moved"
    assert (await moved.json())["is_active"] is True
    app = hooks_client.app
    assert app is not None
    async with app[ENGINE].connect() as conn:
        audited = (
            (
                await conn.execute(
                    text(
                        "SELECT details FROM audit_logs WHERE action = 'webhook.updated'"
                        " AND resource_id = :id ORDER BY created_at, id"
                    ),
                    {"id": hook["id"]},
                )
            )
            .scalars()
            .all()
        )
    assert audited == [
        {"events": ["transfer.failed"], "is_active": False},
        {"url": "http://127.0.0.1:9/moved", "is_active": True},
    ]


async def test_nulls_unsafe_urls_members_and_other_organizations_are_refused(
    hooks_client: TestClient,
) -> None:
    admin = await signup(hooks_client)
    member = await add_user(hooks_client, admin.token)
    rival = await signup(hooks_client)
    hook = await register(hooks_client, admin.headers, "http://127.0.0.1:9/hook")
    path = f"{API}/webhooks/{hook['id']}"

    problem = await expect_problem(
        await hooks_client.patch(path, json={"url": None}, headers=admin.headers),
        422,
        "validation_error",
    )
    assert [e["field"] for e in problem["errors"]] == ["url"]
    await expect_problem(
        await hooks_client.patch(
            path, json={"url": "http://169.254.169.254/latest"}, headers=admin.headers
        ),
        422,
        "webhook_url_not_allowed",
    )
    await expect_problem(
        await hooks_client.patch(path, json={"is_active": False}, headers=member.headers),
        403,
        "forbidden",
    )
    await expect_problem(
        await hooks_client.patch(path, json={"is_active": False}, headers=rival.headers),
        404,
        "not_found",
    )
    await hooks_client.delete(path, headers=admin.headers)
    await expect_problem(
        await hooks_client.patch(path, json={"events": EVENTS}, headers=admin.headers),
        404,
        "not_found",
    )
