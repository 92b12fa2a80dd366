"""The /risk-rules routes: admins manage rules, every change is audited, tenants stay apart."""

from __future__ import annotations

from typing import Any

import pytest
from aiohttp.test_utils import TestClient
from sqlalchemy import Engine, select

from ledger_core.persistence.tables import audit_logs
from tests.risk.support import drain, outcomes
from tests.support.api import (
    API,
    Account,
    add_user,
    create_wallet,
    expect_problem,
    signup,
    system_wallet,
)
from tests.support.ledger_sql import pending_transfer, post_transfer

pytestmark = pytest.mark.asyncio

RULE_FIELDS = {
    "id",
    "organization_id",
    "kind",
    "wallet_type",
    "currency",
    "wallet_id",
    "max_amount",
    "max_count",
    "window_seconds",
    "is_active",
    "created_by",
    "created_at",
    "updated_at",
}


async def _create(client: TestClient, admin: Account, **body: Any) -> dict[str, Any]:
    resp = await client.post(f"{API}/risk-rules", json=body, headers=admin.headers)
    assert resp.status == 201, await resp.text()
    data: dict[str, Any] = await resp.json()
    return data


def _audit(engine: Engine, rule_id: str) -> list[tuple[str, dict[str, Any]]]:
    with engine.connect() as conn:
        rows = conn.execute(
            select(audit_logs.c.action, audit_logs.c.details)
            .where(audit_logs.c.resource_type == "risk_rule", audit_logs.c.resource_id == rule_id)
            .order_by(audit_logs.c.id)
        ).all()
    return [(r.action, r.details) for r in rows]


async def test_admin_creates_reads_lists_changes_and_deletes_a_rule(
    client: TestClient, engine: Engine
) -> None:
    admin = await signup(client)
    rule = await _create(
        client,
        admin,
        kind="WINDOW_DEBITS",
        wallet_type="PRIMARY",
        currency="INR",
        max_amount="5000.00",
        max_count=10,
        window_seconds=3600,
    )
    assert set(rule) == RULE_FIELDS
    assert rule["max_amount"] == "5000.00" and rule["is_active"] is True
    assert rule["created_by"] == admin.user["id"]
    resp = await client.get(f"{API}/risk-rules/{rule['id']}", headers=admin.headers)
    assert (await resp.json()) == rule

    resp = await client.patch(
        f"{API}/risk-rules/{rule['id']}",
        json={"max_amount": "250.50", "max_count": None},
        headers=admin.headers,
    )
    changed = await resp.json()
    assert resp.status == 200, changed
    assert (changed["max_amount"], changed["max_count"]) == ("250.50", None)

    resp = await client.delete(f"{API}/risk-rules/{rule['id']}", headers=admin.headers)
    assert (await resp.json())["is_active"] is False
    listed = await (await client.get(f"{API}/risk-rules", headers=admin.headers)).json()
    assert [r["id"] for r in listed["data"]] == [rule["id"]]
    active = await client.get(
        f"{API}/risk-rules", params={"is_active": "true"}, headers=admin.headers
    )
    assert (await active.json())["data"] == []

    trail = _audit(engine, rule["id"])
    assert [action for action, _ in trail] == [
        "risk_rule.created",
        "risk_rule.updated",
        "risk_rule.deleted",
    ]
    assert trail[0][1]["max_amount"] == "5000.00"
    assert trail[1][1]["before"]["max_count"] == 10 and trail[1][1]["after"]["max_count"] is None
    assert trail[2][1]["after"]["is_active"] is False


@pytest.mark.parametrize(
    ("body", "code"),
    [
        ({"kind": "MAX_AMOUNT", "currency": "INR"}, "validation_error"),
        ({"kind": "MAX_AMOUNT", "max_amount": "10.00"}, "validation_error"),
        ({"kind": "MAX_AMOUNT", "currency": "INR", "max_amount": "1.001"}, "invalid_amount"),
        ({"kind": "MAX_AMOUNT", "currency": "INR", "max_amount": 10}, "invalid_amount"),
        ({"kind": "MAX_AMOUNT", "currency": "XYZ", "max_amount": "1"}, "invalid_currency"),
        (
            {"kind": "MAX_AMOUNT", "currency": "INR", "max_amount": "1", "window_seconds": 5},
            "validation_error",
        ),
        ({"kind": "WINDOW_DEBITS", "max_count": 3}, "validation_error"),
        ({"kind": "WINDOW_DEBITS", "window_seconds": 60}, "validation_error"),
        ({"kind": "WINDOW_DEBITS", "window_seconds": 0, "max_count": 1}, "validation_error"),
        ({"kind": "WINDOW_DEBITS", "window_seconds": 60, "max_count": 0}, "validation_error"),
        ({"kind": "BLOCKED_WALLET"}, "validation_error"),
        ({"kind": "NOPE"}, "validation_error"),
        (
            {"kind": "MAX_AMOUNT", "currency": "INR", "max_amount": "1", "extra": 1},
            "validation_error",
        ),
    ],
)
async def test_malformed_rules_are_422(client: TestClient, body: dict[str, Any], code: str) -> None:
    admin = await signup(client)
    resp = await client.post(f"{API}/risk-rules", json=body, headers=admin.headers)
    await expect_problem(resp, 422, code)


async def test_rules_are_per_organization_and_for_admins(client: TestClient) -> None:
    admin = await signup(client)
    member = await add_user(client, admin.token)
    rival = await signup(client)
    rule = await _create(client, admin, kind="MAX_AMOUNT", currency="INR", max_amount="10")
    url = f"{API}/risk-rules/{rule['id']}"
    for method in ("get", "patch", "delete"):
        kwargs: dict[str, Any] = {"json": {"max_amount": "1"}} if method == "patch" else {}
        await expect_problem(
            await client.request(method, url, headers=rival.headers, **kwargs), 404, "not_found"
        )
        await expect_problem(
            await client.request(method, url, headers=member.headers, **kwargs), 403, "forbidden"
        )
    body = {"kind": "MAX_AMOUNT", "currency": "INR", "max_amount": "1"}
    resp = await client.post(f"{API}/risk-rules", json=body, headers=member.headers)
    await expect_problem(resp, 403, "forbidden")
    listed = await (await client.get(f"{API}/risk-rules", headers=rival.headers)).json()
    assert listed["data"] == []
    foreign = await create_wallet(client, rival.token)
    resp = await client.post(
        f"{API}/risk-rules",
        json={"kind": "BLOCKED_WALLET", "wallet_id": foreign["id"]},
        headers=admin.headers,
    )
    await expect_problem(resp, 404, "not_found")


async def test_a_rule_made_over_http_fails_transfers_at_posting(
    client: TestClient, engine: Engine
) -> None:
    """MAX_AMOUNT on one wallet takes the wallet's currency and fails larger transfers."""
    admin = await signup(client)
    payer = await create_wallet(client, admin.token)
    payee = await create_wallet(client, admin.token)
    post_transfer(engine, (await system_wallet(client, admin.token))["id"], payer["id"], 100_000)
    rule = await _create(client, admin, kind="MAX_AMOUNT", wallet_id=payer["id"], max_amount="50")
    assert (rule["currency"], rule["max_amount"]) == ("INR", "50.00")
    big = pending_transfer(engine, payer["id"], payee["id"], 5_001)
    small = pending_transfer(engine, payer["id"], payee["id"], 5_000)
    drain(engine)
    (status, code, message), done = outcomes(engine, [big, small])
    assert (status, code) == ("FAILED", "limit_exceeded") and rule["id"] in (message or "")
    assert done[0] == "COMPLETED"
    await client.delete(f"{API}/risk-rules/{rule['id']}", headers=admin.headers)
    again = pending_transfer(engine, payer["id"], payee["id"], 5_001)
    drain(engine)
    assert outcomes(engine, [again])[0][0] == "COMPLETED", "a deleted rule no longer applies"
