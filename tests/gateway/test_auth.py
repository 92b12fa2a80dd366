"""Signup, login, tokens, throttling and users, over HTTP against real PostgreSQL and Redis."""

from __future__ import annotations

import asyncio
import json
import time
import uuid

import pytest
from aiohttp.test_utils import TestClient
from sqlalchemy import Engine, select, text

from gateway.throttle import ADDRESS_FAILURES, EMAIL_FAILURES
from ledger_core.persistence.tables import audit_logs
from tests.support.api import (
    API,
    PASSWORD,
    add_user,
    auth_headers,
    expect_problem,
    login,
    signup,
    system_wallet,
    unique_email,
)
from tests.support.fixtures import JWT_SECRET
from tests.support.tokens import alg_none, forge

pytestmark = pytest.mark.asyncio


def _audit(engine: Engine, action: str, **where: object) -> list[dict[str, object]]:
    stmt = select(audit_logs).where(audit_logs.c.action == action)
    for column, value in where.items():
        stmt = stmt.where(audit_logs.c[column] == value)
    with engine.connect() as conn:
        return [dict(row._mapping) for row in conn.execute(stmt)]


class TestSignup:
    async def test_creates_org_admin_and_system_wallet(self, client: TestClient) -> None:
        """Signup answers 201 with user, organization, a bearer token, and a SYSTEM wallet."""
        resp = await client.post(
            f"{API}/auth/signup",
            json={
                "email": unique_email(),
                "password": PASSWORD,
                "full_name": "Ada",
                "organization_name": "Acme",
                "default_currency": "USD",
            },
        )
        assert resp.status == 201
        body = await resp.json()
        assert body["token_type"] == "bearer" and body["expires_in"] == 3600
        assert body["user"]["role"] == "ADMIN"
        assert body["organization"]["default_currency"] == "USD"
        assert "password" not in json.dumps(body["user"])
        wallet = await system_wallet(client, body["access_token"], "USD")
        assert wallet["user_id"] is None and wallet["balance"] == "0.00"

    async def test_default_currency_is_inr(self, client: TestClient) -> None:
        account = await signup(client)
        assert account.org["default_currency"] == "INR"
        assert (await system_wallet(client, account.token))["currency"] == "INR"

    async def test_email_taken_case_insensitively(self, client: TestClient) -> None:
        email = unique_email("Dup")
        await signup(client, email=email)
        resp = await client.post(
            f"{API}/auth/signup",
            json={
                "email": email.upper(),
                "password": PASSWORD,
                "full_name": "Eve",
                "organization_name": "Other",
            },
        )
        await expect_problem(resp, 409, "email_taken")

    async def test_concurrent_signups_for_one_email_make_one_user(
        self, client: TestClient, engine: Engine
    ) -> None:
        """Racing signups with one email: exactly one 201, the rest 409."""
        email = unique_email("race")
        body = {"email": email, "password": PASSWORD, "full_name": "R", "organization_name": "R"}
        answers = await asyncio.gather(
            *(client.post(f"{API}/auth/signup", json=body) for _ in range(5))
        )
        assert sorted(r.status for r in answers) == [201, 409, 409, 409, 409]
        with engine.connect() as conn:
            count = conn.scalar(
                text("SELECT count(*) FROM users WHERE lower(email) = lower(:e)"), {"e": email}
            )
        assert count == 1

    @pytest.mark.parametrize(
        ("change", "field", "code"),
        [
            ({"password": "short9chr"}, "password", "validation_error"),
            ({"email": "not-an-email"}, "email", "validation_error"),
            ({"default_currency": "XYZ"}, "default_currency", "invalid_currency"),
            ({"default_currency": "inr"}, "default_currency", "invalid_currency"),
            ({"default_currency": 356}, "default_currency", "validation_error"),
            ({"full_name": "   "}, "full_name", "validation_error"),
            ({"full_name": "x" * 201}, "full_name", "validation_error"),
            ({"role": "ADMIN"}, "role", "validation_error"),
        ],
    )
    async def test_bad_fields_are_422(
        self, client: TestClient, change: dict[str, object], field: str, code: str
    ) -> None:
        body: dict[str, object] = {
            "email": unique_email(),
            "password": PASSWORD,
            "full_name": "Ada",
            "organization_name": "Acme",
        }
        body.update(change)
        problem = await expect_problem(
            await client.post(f"{API}/auth/signup", json=body), 422, code
        )
        assert [e["field"] for e in problem["errors"]] == [field]

    async def test_signup_is_audited_without_secrets(
        self, client: TestClient, engine: Engine
    ) -> None:
        account = await signup(client)
        rows = _audit(engine, "auth.signup", actor_id=uuid.UUID(account.user["id"]))
        assert len(rows) == 1
        assert str(rows[0]["organization_id"]) == account.org["id"]
        assert rows[0]["client_address"] == "127.0.0.1"
        assert rows[0]["request_id"]
        assert PASSWORD not in json.dumps(rows[0]["details"])


class TestLogin:
    async def test_login_returns_a_working_token(self, client: TestClient, engine: Engine) -> None:
        email = unique_email()
        account = await signup(client, email=email)
        resp = await client.post(
            f"{API}/auth/login", json={"email": email.upper(), "password": PASSWORD}
        )
        assert resp.status == 200
        body = await resp.json()
        assert set(body) == {"access_token", "token_type", "expires_in"}
        me = await client.get(f"{API}/auth/me", headers=auth_headers(body["access_token"]))
        assert await me.json() == {  # the user exactly as `GET /users` shows it, and the org
            **account.user,
            "organization": {"id": account.org["id"], "name": account.org["name"]},
        }
        assert account.user["email"] == email and account.user["role"] == "ADMIN"
        assert _audit(engine, "auth.login_succeeded", actor_id=uuid.UUID(account.user["id"]))

    async def test_wrong_password_and_unknown_email_look_the_same(
        self, client: TestClient, engine: Engine
    ) -> None:
        email = unique_email()
        account = await signup(client, email=email)
        wrong = await client.post(f"{API}/auth/login", json={"email": email, "password": "x" * 12})
        unknown_email = unique_email("ghost")
        unknown = await client.post(
            f"{API}/auth/login", json={"email": unknown_email, "password": PASSWORD}
        )
        a = await expect_problem(wrong, 401, "invalid_credentials")
        b = await expect_problem(unknown, 401, "invalid_credentials")
        assert a == b
        failures = _audit(engine, "auth.login_failed")
        mine = [r for r in failures if r["details"]["email"] == email]
        assert [str(r["organization_id"]) for r in mine] == [account.org["id"]]
        ghosts = [r for r in failures if r["details"]["email"] == unknown_email]
        assert [r["organization_id"] for r in ghosts] == [None]

    async def test_repeated_failures_for_one_email_are_throttled(self, client: TestClient) -> None:
        email = unique_email()
        await signup(client, email=email)
        for _ in range(EMAIL_FAILURES):
            resp = await client.post(
                f"{API}/auth/login", json={"email": email, "password": "w" * 10}
            )
            await expect_problem(resp, 401, "invalid_credentials")
        # Locked: even the right password is refused until the window passes.
        resp = await client.post(f"{API}/auth/login", json={"email": email, "password": PASSWORD})
        await expect_problem(resp, 429, "too_many_attempts")
        assert 0 < int(resp.headers["Retry-After"]) <= 15 * 60

    async def test_repeated_failures_from_one_address_are_throttled(
        self, client: TestClient
    ) -> None:
        for _ in range(ADDRESS_FAILURES):
            resp = await client.post(
                f"{API}/auth/login", json={"email": unique_email("spray"), "password": "w" * 10}
            )
            await expect_problem(resp, 401, "invalid_credentials")
        resp = await client.post(
            f"{API}/auth/login", json={"email": unique_email("spray"), "password": "w" * 10}
        )
        await expect_problem(resp, 429, "too_many_attempts")
        assert int(resp.headers["Retry-After"]) > 0

    async def test_success_clears_the_email_count(self, client: TestClient) -> None:
        email = unique_email()
        await signup(client, email=email)
        for _ in range(EMAIL_FAILURES - 1):
            await client.post(f"{API}/auth/login", json={"email": email, "password": "w" * 10})
        await login(client, email)
        for _ in range(EMAIL_FAILURES - 1):
            await client.post(f"{API}/auth/login", json={"email": email, "password": "w" * 10})
        await login(client, email)


def _forge(claims: dict[str, object], key: str = JWT_SECRET, alg: str = "HS256") -> str:
    return forge(claims, key, alg)


class TestTokens:
    async def test_bad_tokens_are_401(self, client: TestClient) -> None:
        """Missing, malformed, expired, wrongly signed, alg-none and claim-less tokens."""
        account = await signup(client)
        now = int(time.time())
        sub = account.user["id"]
        good = {"sub": sub, "iat": now, "exp": now + 60}
        headers_list: list[dict[str, str]] = [
            {},
            {"Authorization": "Bearer"},
            {"Authorization": "Bearer not.a.jwt"},
            {"Authorization": "Basic dXNlcjpwYXNz"},
            {"Authorization": f"Token {account.token}"},
            auth_headers(_forge({**good, "exp": now - 10, "iat": now - 100})),
            auth_headers(_forge(good, key="some-other-key-" + "z" * 32)),
            auth_headers(alg_none(good)),
            auth_headers(_forge({"sub": sub, "iat": now})),
            auth_headers(_forge({"sub": sub, "exp": now + 60})),
            auth_headers(_forge({"iat": now, "exp": now + 60})),
            auth_headers(_forge({**good, "sub": "not-a-uuid"})),
            auth_headers(_forge({**good, "sub": str(uuid.uuid4())})),
            auth_headers(_forge(good, alg="HS512")),
            auth_headers(account.token[:-3] + "abc"),
        ]
        for headers in headers_list:
            resp = await client.get(f"{API}/auth/me", headers=headers)
            await expect_problem(resp, 401, "unauthorized")
            assert resp.headers["WWW-Authenticate"].startswith("Bearer")
        ok = await client.get(f"{API}/auth/me", headers=auth_headers(_forge(good)))
        assert ok.status == 200

    async def test_deactivated_user_is_refused(self, client: TestClient, engine: Engine) -> None:
        admin = await signup(client)
        member = await add_user(client, admin.token)
        assert (await client.get(f"{API}/auth/me", headers=member.headers)).status == 200
        with engine.begin() as conn:
            conn.execute(
                text("UPDATE users SET is_active = false WHERE id = :id"), {"id": member.user["id"]}
            )
        await asyncio.sleep(1.1)  # the active-user cache lives about a second
        resp = await client.get(f"{API}/auth/me", headers=member.headers)
        await expect_problem(resp, 401, "unauthorized")
        resp = await client.post(
            f"{API}/auth/login", json={"email": member.user["email"], "password": PASSWORD}
        )
        await expect_problem(resp, 401, "invalid_credentials")


class TestUsers:
    async def test_admin_adds_and_lists_users_with_cursors(
        self, client: TestClient, engine: Engine
    ) -> None:
        admin = await signup(client)
        added = [await add_user(client, admin.token) for _ in range(3)]
        assert _audit(engine, "user.created", actor_id=uuid.UUID(admin.user["id"]))
        seen: list[str] = []
        cursor = None
        while True:
            params = {"limit": "2"} if cursor is None else {"limit": "2", "cursor": cursor}
            resp = await client.get(f"{API}/users", params=params, headers=admin.headers)
            page = await resp.json()
            seen += [u["id"] for u in page["data"]]
            cursor = page["next_cursor"]
            if cursor is None:
                break
        expected = [a.user["id"] for a in reversed(added)] + [admin.user["id"]]
        assert seen == expected

    async def test_member_may_not_manage_users(self, client: TestClient) -> None:
        admin = await signup(client)
        member = await add_user(client, admin.token)
        resp = await client.post(
            f"{API}/users",
            json={"email": unique_email(), "password": PASSWORD, "full_name": "X", "role": "ADMIN"},
            headers=member.headers,
        )
        await expect_problem(resp, 403, "forbidden")
        await expect_problem(
            await client.get(f"{API}/users", headers=member.headers), 403, "forbidden"
        )

    async def test_added_user_email_must_be_free(self, client: TestClient) -> None:
        admin = await signup(client)
        resp = await client.post(
            f"{API}/users",
            json={
                "email": admin.user["email"].upper(),
                "password": PASSWORD,
                "full_name": "X",
                "role": "MEMBER",
            },
            headers=admin.headers,
        )
        await expect_problem(resp, 409, "email_taken")

    async def test_organization_me(self, client: TestClient) -> None:
        admin = await signup(client, currency="JPY")
        member = await add_user(client, admin.token)
        resp = await client.get(f"{API}/organizations/me", headers=member.headers)
        body = await resp.json()
        assert body == admin.org
        assert set(body) == {"id", "name", "default_currency", "created_at"}
