"""POST /webhooks/{id}/test: one signed test event, sent now, and what the endpoint did."""

from __future__ import annotations

import pytest
from aiohttp.test_utils import TestClient

from ledger_core.webhooks import verify
from tests.events.receiver import Receiver
from tests.events.test_webhook_routes import register
from tests.support.api import API, add_user, expect_problem, signup

pytestmark = pytest.mark.asyncio


async def test_the_endpoint_gets_a_signed_test_event_and_the_answer_says_how_it_went(
    hooks_client: TestClient,
) -> None:
    admin = await signup(hooks_client)
    with Receiver() as hooks:
        hooks.script("/down", [503])
        good = await register(hooks_client, admin.headers, hooks.url("/hook"))
        bad = await register(hooks_client, admin.headers, hooks.url("/down"))

        ok = await hooks_client.post(f"{API}/webhooks/{good['id']}/test", headers=admin.headers)
        down = await hooks_client.post(f"{API}/webhooks/{bad['id']}/test", headers=admin.headers)

        (received,) = hooks.received("/hook")
    answer = await ok.json()
    assert ok.status == 200, answer
    assert (answer["succeeded"], answer["status_code"], answer["error"]) == (True, 200, None)
    assert received.headers["VaultCraft-Event-Type"] == "webhook.test"
    assert received.headers["VaultCraft-Event-Id"] == answer["event_id"]
    assert verify(good["secret"], received.headers["VaultCraft-Signature"], received.body)
    failed = await down.json()
    assert (failed["succeeded"], failed["status_code"]) == (False, 503)
    assert "503" in failed["error"]


async def test_unreachable_members_and_other_organizations(hooks_client: TestClient) -> None:
    admin = await signup(hooks_client)
    member = await add_user(hooks_client, admin.token)
    rival = await signup(hooks_client)
    hook = await register(hooks_client, admin.headers, "http://127.0.0.1:9/closed")
    path = f"{API}/webhooks/{hook['id']}/test"

    resp = await hooks_client.post(path, headers=admin.headers)
    answer = await resp.json()
    assert resp.status == 200 and answer["succeeded"] is False
    assert answer["status_code"] is None and answer["error"]
    await expect_problem(await hooks_client.post(path, headers=member.headers), 403, "forbidden")
    await expect_problem(await hooks_client.post(path, headers=rival.headers), 404, "not_found")
