"""Secrets never leave: not in any response, not in any record, not in any process's log.

A whole stack (gateway, posting worker, webhook worker, relay as processes, logging JSON
to files) serves signups, logins right and wrong, new users, transfers, bad tokens, and
webhooks delivered to a real receiver on loopback; then every answer and every log line
is searched for the JWT secret, the passwords, bcrypt hashes (`$2b$`), the bearer tokens
and the webhook signing secrets. A webhook secret is shown once, in the `201` that
creates it, and never again: not in listings, deliveries, audit records, events (outbox
and stream) or what the receiver gets.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest
import redis
from sqlalchemy import Engine, text

from tests.events.receiver import Receiver
from tests.support.stack import JWT_SECRET, Stack
from tests.support.stack_api import PASSWORD, Tenant, signup
from workers.event_stream import EVENT_STREAM

pytestmark = pytest.mark.slow

API = "/api/v1"
WRONG_PASSWORD = "wrong-horse-" + uuid.uuid4().hex
MEMBER_PASSWORD = "member-pass-" + uuid.uuid4().hex
HOOK_EVENTS = ["transfer.completed", "wallet.status_changed"]


@pytest.fixture(scope="module")
def stack(
    database_url: str, redis_url: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Stack]:
    data_dir: Path = tmp_path_factory.mktemp("secrets")
    env = {
        "VAULTCRAFT_ALLOW_PRIVATE_WEBHOOKS": "1",
        "VAULTCRAFT_WEBHOOK_BACKOFF_BASE_MS": "20",
        "VAULTCRAFT_WEBHOOK_BACKOFF_MAX_MS": "200",
        "VAULTCRAFT_WEBHOOK_RESCUE_AFTER_S": "2",
    }
    with Stack(
        database_url,
        redis_url,
        data_dir,
        processes=("gateway", "worker", "webhooks", "relay"),
        extra_env=env,
    ) as running:
        yield running


@dataclass
class Hooks:
    """What a webhook's life showed: its secrets, and every answer after creation."""

    admin: Tenant
    secrets: list[str]
    answers: list[str] = field(default_factory=list)
    received: list[str] = field(default_factory=list)


@pytest.fixture(scope="module")
def hooks(stack: Stack) -> Iterator[Hooks]:
    """Register two webhooks, deliver to one, redeliver, delete the other, read it all."""
    with httpx.Client(base_url=stack.base_url, timeout=30) as http, Receiver() as receiver:
        admin = signup(http, "USD")
        body = {"url": receiver.url("/hook"), "events": HOOK_EVENTS}
        created = [admin.post(f"{API}/webhooks", body) for _ in range(2)]
        assert [r.status_code for r in created] == [201, 201], created[0].text
        kept, dropped = (r.json() for r in created)
        found = Hooks(admin, [kept["secret"], dropped["secret"]])
        http.event_hooks["response"] = [lambda r: found.answers.append(r.read().decode())]
        gone = admin.http.delete(f"{API}/webhooks/{dropped['id']}", headers=admin.headers)
        assert gone.status_code == 204
        admin.deposit(admin.wallet("USD"), "5.00")
        deliveries = _wait_delivered(admin, kept["id"])
        event_id = deliveries[0]["event_id"]
        assert admin.post(f"{API}/events/{event_id}/redeliver").status_code == 202
        _wait_delivered(admin, kept["id"], count=2)
        for path in ("/webhooks", f"/webhooks/{kept['id']}/deliveries", "/audit-logs"):
            assert admin.get(API + path).status_code == 200
        found.received = [r.body.decode() + repr(r.headers) for r in receiver.received()]
        assert len(found.received) == 2
    yield found


def _wait_delivered(admin: Tenant, hook_id: str, count: int = 1) -> list[dict[str, str]]:
    deadline = time.monotonic() + 30
    while True:
        found: list[dict[str, str]] = admin.get(f"{API}/webhooks/{hook_id}/deliveries").json()[
            "data"
        ]
        if len(found) >= count and all(d["status"] == "SUCCEEDED" for d in found):
            return found
        assert time.monotonic() < deadline, found
        time.sleep(0.1)


def test_no_secret_in_any_response_or_log(stack: Stack, hooks: Hooks) -> None:
    answers: list[str] = []
    with httpx.Client(base_url=stack.base_url, timeout=30) as http:
        http.event_hooks["response"] = [lambda r: answers.append(r.read().decode())]
        admin = signup(http, "USD")
        email = f"member-{uuid.uuid4().hex[:10]}@example.com"
        http.post(
            f"{API}/users",
            json={
                "email": email,
                "password": MEMBER_PASSWORD,
                "full_name": "M",
                "role": "MEMBER",
            },
            headers=admin.headers,
        ).raise_for_status()
        member = http.post(f"{API}/auth/login", json={"email": email, "password": MEMBER_PASSWORD})
        http.post(f"{API}/auth/login", json={"email": email, "password": WRONG_PASSWORD})
        for path in ("/auth/me", "/users", "/organizations/me", "/wallets", "/transactions"):
            http.get(API + path, headers=admin.headers)
        http.get(f"{API}/auth/me", headers={"Authorization": f"Bearer {JWT_SECRET}"})
        wallet = admin.wallet("USD")
        admin.deposit(wallet, "5.00")
        tokens = [admin.token, member.json()["access_token"], hooks.admin.token]
    secrets = [JWT_SECRET, PASSWORD, MEMBER_PASSWORD, WRONG_PASSWORD, "$2b$", "$2a$"]
    for answer in answers + hooks.answers:
        assert not [s for s in secrets if s in answer], answer[:300]
    assert "POST" in stack.logs("gateway")  # requests are logged: there is something to search
    assert "Delivered event" in stack.logs("webhooks")  # and deliveries
    for name in stack.names:
        log = stack.logs(name)
        found = [s[:12] for s in [*secrets, *tokens, *hooks.secrets] if s in log]
        assert found == [], f"{name}.log holds {found}"


def test_a_webhook_secret_is_shown_once(hooks: Hooks) -> None:
    """Listings, deliveries, redelivery, deletion and audit answers never carry it."""
    assert len(hooks.answers) >= 8
    for answer in hooks.answers:
        assert not [s for s in hooks.secrets if s in answer], answer[:300]
    for request in hooks.received:  # the receiver gets a signature, never the key
        assert not [s for s in hooks.secrets if s in request], request[:300]


def test_no_record_or_event_holds_a_webhook_secret(
    hooks: Hooks, engine: Engine, redis_url: str
) -> None:
    """Only `webhooks.secret` holds it: not audit details, events, deliveries or attempts."""
    org = hooks.admin.organization_id
    with engine.connect() as conn:
        records = {
            "audit_logs": conn.execute(
                text("SELECT action, details::text FROM audit_logs WHERE organization_id = :o"),
                {"o": org},
            ).all(),
            "outbox": conn.execute(
                text("SELECT type, data::text FROM outbox WHERE organization_id = :o"), {"o": org}
            ).all(),
            "webhook_deliveries": conn.execute(
                text(
                    "SELECT status, coalesce(last_error, '') FROM webhook_deliveries"
                    " WHERE organization_id = :o"
                ),
                {"o": org},
            ).all(),
            "webhook_attempts": conn.execute(
                text(
                    "SELECT a.attempt, coalesce(a.error, '') FROM webhook_attempts a"
                    " JOIN webhook_deliveries d ON d.id = a.delivery_id"
                    " WHERE d.organization_id = :o"
                ),
                {"o": org},
            ).all(),
        }
    actions = {action for action, _ in records["audit_logs"]}
    assert {"webhook.created", "webhook.deleted", "event.redelivered"} <= actions, actions
    for table, rows in records.items():
        assert rows, f"nothing in {table} to search"
        leaked = [row for row in rows if any(s in str(row) for s in hooks.secrets)]
        assert leaked == [], f"{table} holds a webhook secret"
    with redis.Redis.from_url(redis_url) as conn:
        stream = [repr(fields) for _, fields in conn.xrange(EVENT_STREAM)]
    assert [e for e in stream if org in e], "the organization's events are in the stream"
    assert not [e for e in stream if any(s in e for s in hooks.secrets)]
