"""Conventions every route shares: request ids, problem details, limits and hostile input."""

from __future__ import annotations

import uuid

import pytest
import pytest_asyncio
from aiohttp import web
from aiohttp.test_utils import TestClient

from gateway.app import create_app
from gateway.middlewares import observe, problems, stamp_request_id
from gateway.registry import RouteTable
from gateway.responses import json_response
from gateway.schemas.common import Amount, Currency
from gateway.state import ROUTES
from gateway.validation import BodyModel
from ledger_core.money import parse_amount
from runtime.settings import Settings
from tests.support.api import API, auth_headers, create_wallet, expect_problem, signup

INJECTIONS = [
    "'; DROP TABLE wallets; --",
    "' OR '1'='1",
    "<script>alert(1)</script>",
    "../../etc/passwd",
    "%00",
    "\u202e\u0000",
]


@pytest.mark.asyncio
class TestRequestId:
    async def test_echoed_or_generated_on_every_answer(self, client: TestClient) -> None:
        resp = await client.get(f"{API}/health", headers={"X-Request-ID": "abc-123"})
        assert resp.headers["X-Request-ID"] == "abc-123"
        resp = await client.get(f"{API}/health")
        generated = resp.headers["X-Request-ID"]
        assert len(generated) == 32
        for method, path in (
            ("GET", "/nowhere"),
            ("DELETE", f"{API}/wallets"),
            ("GET", f"{API}/auth/me"),
        ):
            resp = await client.request(method, path, headers={"X-Request-ID": "req-9"})
            assert resp.headers["X-Request-ID"] == "req-9"
        resp = await client.get(f"{API}/health", headers={"X-Request-ID": "x" * 500})
        assert resp.headers["X-Request-ID"] != "x" * 500


@pytest.mark.asyncio
class TestProblems:
    async def test_unknown_route_and_wrong_method(self, client: TestClient) -> None:
        await expect_problem(await client.get(f"{API}/nope"), 404, "not_found")
        resp = await client.delete(f"{API}/wallets")
        await expect_problem(resp, 405, "method_not_allowed")
        assert "GET" in resp.headers["Allow"]

    async def test_body_over_one_mebibyte_is_413(self, client: TestClient) -> None:
        account = await signup(client)
        big = b'{"type": "PRIMARY", "name": "' + b"x" * (1024 * 1024) + b'"}'
        resp = await client.post(
            f"{API}/wallets",
            data=big,
            headers={**account.headers, "Content-Type": "application/json"},
        )
        await expect_problem(resp, 413, "payload_too_large")

        async def chunks():  # no Content-Length: the limit applies while reading
            for _ in range(20):
                yield b"x" * 65536

        resp = await client.post(
            f"{API}/auth/signup", data=chunks(), headers={"Content-Type": "application/json"}
        )
        await expect_problem(resp, 413, "payload_too_large")

    @pytest.mark.parametrize(
        "raw",
        [
            b"{",
            b"[]",
            b'"text"',
            b"null",
            b"42",
            b"",
            b"   ",
            b'{"email": }',
            b"\xff\xfe",
            b'{"email": "a@b.co", "email": 1}',
        ],
    )
    async def test_malformed_bodies_are_422(self, client: TestClient, raw: bytes) -> None:
        resp = await client.post(
            f"{API}/auth/signup", data=raw, headers={"Content-Type": "application/json"}
        )
        await expect_problem(resp, 422, "validation_error")

    async def test_non_json_content_type_is_415(self, client: TestClient) -> None:
        resp = await client.post(
            f"{API}/auth/login",
            data="email=a&password=b",
            headers={"Content-Type": "application/x-www-form-urlencoded"},
        )
        await expect_problem(resp, 415, "unsupported_media_type")

    async def test_unknown_fields_are_refused(self, client: TestClient) -> None:
        account = await signup(client)
        resp = await client.post(
            f"{API}/wallets", json={"type": "PRIMARY", "balance": "100.00"}, headers=account.headers
        )
        problem = await expect_problem(resp, 422, "validation_error")
        assert problem["errors"] == [{"field": "balance", "message": "unknown field"}]

    async def test_hostile_strings_never_500(self, client: TestClient) -> None:
        account = await signup(client)
        for text in INJECTIONS:
            resp = await client.post(
                f"{API}/wallets", json={"type": "PRIMARY", "name": text}, headers=account.headers
            )
            assert resp.status in (201, 422), await resp.text()
            if resp.status == 201:
                assert (await resp.json())["name"] == text.strip()
            for params in ({"currency": text}, {"user_id": text}, {"type": text}, {"cursor": text}):
                resp = await client.get(f"{API}/wallets", params=params, headers=account.headers)
                assert resp.status in ((400, 422) if "cursor" in params else (422,)), (
                    params,
                    await resp.text(),
                )
            resp = await client.post(
                f"{API}/auth/login", json={"email": text + "@x.io", "password": text * 4}
            )
            assert resp.status in (401, 422)
            resp = await client.get(f"{API}/wallets/{text}", headers=account.headers)
            assert resp.status in (404, 422)

    async def test_nul_and_huge_values_are_422(self, client: TestClient) -> None:
        account = await signup(client)
        for body in (
            {"type": "PRIMARY", "name": "a\u0000b"},
            {"type": "PRIMARY", "name": "n" * 10_000},
            {"type": "PRIMARY", "currency": "I" * 100_000},
            {"type": "PRIMARY", "user_id": "1" * 10_000},
            {"type": ["PRIMARY"]},
            {"type": {"$ne": None}},
        ):
            resp = await client.post(f"{API}/wallets", json=body, headers=account.headers)
            assert resp.status == 422, (body, await resp.text())

    async def test_invalid_uuids_in_paths(self, client: TestClient) -> None:
        account = await signup(client)
        for raw in ("not-a-uuid", "123", "0" * 100, "%27%20OR%201%3D1"):
            resp = await client.get(f"{API}/wallets/{raw}", headers=account.headers)
            await expect_problem(resp, 422, "validation_error")
        resp = await client.get(f"{API}/wallets/{uuid.uuid4()}", headers=account.headers)
        await expect_problem(resp, 404, "not_found")

    async def test_database_down_is_503(self, api_settings: Settings, aiohttp_client) -> None:
        dead = Settings(
            database_url="postgresql://postgres@127.0.0.1:1/nowhere",
            redis_url=api_settings.redis_url,
            data_dir=api_settings.data_dir,
            jwt_secret=api_settings.jwt_secret,
            bcrypt_rounds=4,
        )
        client = await aiohttp_client(create_app(dead))
        resp = await client.post(
            f"{API}/auth/login", json={"email": "a@b.co", "password": "x" * 10}
        )
        problem = await expect_problem(resp, 503, "service_unavailable")
        assert "127.0.0.1" not in problem["detail"]
        assert resp.headers["Retry-After"]
        resp = await client.get(f"{API}/ready")
        await expect_problem(resp, 503, "service_unavailable")
        assert (await client.get(f"{API}/health")).status == 200


class Charge(BodyModel):
    amount: Amount
    currency: Currency


async def _charge(request: web.Request, body: Charge) -> web.Response:
    return json_response({"minor": parse_amount(body.amount, body.currency)})


@pytest_asyncio.fixture
async def money_client(aiohttp_client) -> TestClient:
    """A bare app with one route taking money, to check the shared field types."""
    table = RouteTable(tag="Test")
    table.post("/charge", body=Charge, auth=False)(_charge)
    app = web.Application(middlewares=[observe, problems])
    app[ROUTES] = []
    table.register(app)
    app.on_response_prepare.append(stamp_request_id)
    return await aiohttp_client(app)


@pytest.mark.asyncio
class TestMoneyFields:
    @pytest.mark.parametrize(
        "amount",
        [
            10.5,
            10,
            "1.001",
            "0",
            "0.00",
            "-1.00",
            "1e3",
            "NaN",
            "Infinity",
            " 1.00",
            "1,00",
            "92233720368547758.08",
            "1" * 30,
            None,
            True,
            ["1.00"],
            "01.00",
            ".5",
            "5.",
        ],
    )
    async def test_bad_amounts_are_invalid_amount(
        self, money_client: TestClient, amount: object
    ) -> None:
        resp = await money_client.post(f"{API}/charge", json={"amount": amount, "currency": "INR"})
        await expect_problem(resp, 422, "invalid_amount")

    async def test_good_amounts(self, money_client: TestClient) -> None:
        for amount, currency, minor in (
            ("10.50", "INR", 1050),
            ("7", "JPY", 7),
            ("92233720368547758.07", "INR", 2**63 - 1),
            ("1.234", "BHD", 1234),
        ):
            resp = await money_client.post(
                f"{API}/charge", json={"amount": amount, "currency": currency}
            )
            assert (await resp.json()) == {"minor": minor}

    async def test_bad_currencies(self, money_client: TestClient) -> None:
        for currency in ("XYZ", 1, None, "inr", "EURO"):
            resp = await money_client.post(
                f"{API}/charge", json={"amount": "1.00", "currency": currency}
            )
            await expect_problem(resp, 422, "invalid_currency")


@pytest.mark.asyncio
class TestOperations:
    async def test_health_ready_metrics(self, client: TestClient) -> None:
        for prefix in (API, ""):
            assert await (await client.get(f"{prefix}/health")).json() == {"status": "ok"}
            ready = await client.get(f"{prefix}/ready")
            assert ready.status == 200, await ready.text()
        account = await signup(client)
        wallet = await create_wallet(client, account.token)
        await client.get(f"{API}/wallets/{wallet['id']}", headers=auth_headers(account.token))
        text = await (await client.get("/metrics")).text()
        assert 'route="/api/v1/wallets/{wallet_id}"' in text
        assert "vaultcraft_http_request_duration_seconds_bucket" in text

    async def test_docs_are_served_offline(self, client: TestClient) -> None:
        page = await (await client.get("/docs")).text()
        assert "/docs/assets/swagger-ui-bundle.js" in page
        assert "http" not in page.replace("http-equiv", "")
        for asset in ("swagger-ui-bundle.js", "swagger-ui.css", "swagger-ui-standalone-preset.js"):
            resp = await client.get(f"/docs/assets/{asset}")
            assert resp.status == 200 and len(await resp.read()) > 1000


def test_route_declaration_checks_handler_signature() -> None:
    table = RouteTable(tag="Test")
    with pytest.raises(TypeError, match="body"):
        table.post("/x/{thing_id}", body=Charge)(_charge)
