"""Secrets never leave: not in any response, not in any process's log.

A whole stack (gateway, worker, relay as processes, logging JSON to files) serves signups,
logins right and wrong, new users, transfers and bad tokens; then every answer and every
log line is searched for the JWT secret, the passwords, bcrypt hashes (`$2b$`) and the
bearer tokens. Webhook secrets are shown once, at creation, and never again.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.support.stack import JWT_SECRET, Stack
from tests.support.stack_api import PASSWORD, signup

API = "/api/v1"
WRONG_PASSWORD = "wrong-horse-" + uuid.uuid4().hex
MEMBER_PASSWORD = "member-pass-" + uuid.uuid4().hex


@pytest.fixture(scope="module")
def stack(
    database_url: str, redis_url: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Stack]:
    data_dir: Path = tmp_path_factory.mktemp("secrets")
    with Stack(
        database_url, redis_url, data_dir, extra_env={"VAULTCRAFT_ALLOW_PRIVATE_WEBHOOKS": "1"}
    ) as running:
        yield running


def test_no_secret_in_any_response_or_log(stack: Stack) -> None:
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
        tokens = [admin.token, member.json()["access_token"]]
    secrets = [JWT_SECRET, PASSWORD, MEMBER_PASSWORD, WRONG_PASSWORD, "$2b$", "$2a$"]
    for answer in answers:
        assert not [s for s in secrets if s in answer], answer[:300]
    assert "POST" in stack.logs("gateway")  # requests are logged: there is something to search
    for name in stack.names:
        log = stack.logs(name)
        found = [s[:12] for s in [*secrets, *tokens] if s in log]
        assert found == [], f"{name}.log holds {found}"


def test_a_webhook_secret_is_shown_once(stack: Stack) -> None:
    with httpx.Client(base_url=stack.base_url, timeout=30) as http:
        documented = http.get(f"{API}/openapi.json").json()["paths"]
        if f"{API}/webhooks" not in documented:
            pytest.skip("this build has no webhook routes")
        admin = signup(http, "USD")
        created = admin.post(
            f"{API}/webhooks",
            {"url": "http://127.0.0.1:9/hook", "events": ["transfer.completed"]},
        )
        assert created.status_code == 201, created.text
        secret = created.json()["secret"]
        assert len(secret) >= 16
        reads = [admin.get(f"{API}/webhooks")]
        reads += [admin.get(f"{API}/webhooks/{created.json()['id']}/deliveries")]
        for resp in reads:
            assert resp.status_code == 200, resp.text
            assert secret not in resp.text
    for name in stack.names:
        assert secret not in stack.logs(name), f"{name}.log holds a webhook secret"
