"""The OpenAPI document is valid 3.1, complete, and the API survives a schema-driven fuzzer."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis
import requests
import schemathesis
from aiohttp import web
from aiohttp.test_utils import TestClient
from hypothesis import HealthCheck, settings
from openapi_spec_validator import OpenAPIV31SpecValidator
from schemathesis.checks import (
    content_type_conformance,
    not_a_server_error,
    response_schema_conformance,
    status_code_conformance,
)

from gateway.app import create_app
from gateway.openapi import build_openapi
from gateway.state import ROUTES
from runtime.settings import Settings
from tests.support.api import API, PASSWORD
from tests.support.fixtures import ADDRESS_PREFIX, JWT_SECRET, SIGNUP_PREFIX
from tests.support.live_server import LiveGateway


def offline_app() -> web.Application:
    """The app with its routes declared; no server or database needed."""
    return create_app(
        Settings(
            database_url="postgresql://unused@127.0.0.1/unused",
            redis_url="redis://127.0.0.1:1/0",
            data_dir=Path("/nonexistent"),
            jwt_secret="unused",
        )
    )


def _document() -> dict[str, Any]:
    """The document as the app builds it."""
    return build_openapi(offline_app()[ROUTES])


DOCUMENT = _document()


@pytest.mark.asyncio
async def test_served_document_is_valid_openapi_31(client: TestClient) -> None:
    resp = await client.get(f"{API}/openapi.json")
    served = await resp.json()
    assert served["openapi"] == "3.1.0"
    OpenAPIV31SpecValidator(served).validate()
    assert served == DOCUMENT


@pytest.mark.asyncio
async def test_every_route_is_documented(client: TestClient) -> None:
    app = client.app
    assert app is not None
    served = {
        (route.method, route.resource.canonical)
        for route in app.router.routes()
        if route.resource is not None
        and route.resource.canonical.startswith(API)
        and route.method != "HEAD"
    }
    documented = {
        (method.upper(), path) for path, ops in DOCUMENT["paths"].items() for method in ops
    }
    assert served == documented
    for path in (
        "/auth/signup",
        "/auth/login",
        "/auth/me",
        "/users",
        "/organizations/me",
        "/wallets",
        "/wallets/{wallet_id}",
        "/wallets/summary",
        "/health",
        "/ready",
        "/metrics",
        "/openapi.json",
        "/docs",
    ):
        assert API + path in DOCUMENT["paths"], path


def test_holds_and_overdraft_limits_are_documented() -> None:
    paths, schemas = DOCUMENT["paths"], DOCUMENT["components"]["schemas"]
    for action in ("capture", "void"):
        op = paths[f"{API}/transactions/{{transaction_id}}/{action}"]["post"]
        assert {"202", "409"} <= set(op["responses"]), action
    assert {"hold", "hold_expires_in_s"} <= set(schemas["CreateTransfer"]["properties"])
    assert {"hold_amount", "hold_expires_at"} <= set(schemas["TransactionOut"]["properties"])
    assert {"held", "overdraft_limit"} <= set(schemas["WalletOut"]["properties"])
    assert "overdraft_limit" in schemas["UpdateWallet"]["properties"]
    assert "amount" in schemas["CaptureHold"]["properties"]


def test_operations_declare_security_params_and_problems() -> None:
    scheme = DOCUMENT["components"]["securitySchemes"]["bearerAuth"]
    assert {k: scheme[k] for k in ("type", "scheme")} == {"type": "http", "scheme": "bearer"}
    assert "POST /api-keys" in scheme["description"]
    wallet = DOCUMENT["paths"][f"{API}/wallets/{{wallet_id}}"]
    assert wallet["get"]["security"] == [{"bearerAuth": ["wallets:read"]}]
    assert wallet["get"]["x-api-key-scope"] == "wallets:read"
    assert wallet["get"]["parameters"] == [
        {
            "name": "wallet_id",
            "in": "path",
            "required": True,
            "description": "The wallet it concerns",
            "schema": {"type": "string", "format": "uuid"},
        }
    ]
    for status in ("401", "403", "404", "422"):
        content = wallet["get"]["responses"][status]["content"]
        assert content["application/problem+json"]["schema"] == {
            "$ref": "#/components/schemas/Problem"
        }
    listing = DOCUMENT["paths"][f"{API}/wallets"]["get"]
    names = {p["name"] for p in listing["parameters"] if p["in"] == "query"}
    assert names == {"limit", "cursor", "type", "status", "currency", "user_id", "metadata"}
    (metadata,) = [p for p in listing["parameters"] if p["name"] == "metadata"]
    for path in ("/transactions", "/wallets/{wallet_id}/statement"):
        content = DOCUMENT["paths"][f"{API}{path}"]["get"]["responses"]["200"]["content"]
        assert set(content) == {"application/json", "text/csv"}
    assert metadata["style"] == "deepObject" and metadata["explode"] is True
    login = DOCUMENT["paths"][f"{API}/auth/login"]["post"]
    assert login["security"] == []
    assert "Retry-After" in login["responses"]["429"]["headers"]
    create = DOCUMENT["paths"][f"{API}/wallets"]["post"]
    assert create["requestBody"]["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/CreateWallet"
    }
    assert DOCUMENT["components"]["schemas"]["CreateWallet"]["additionalProperties"] is False


@pytest.fixture(scope="module")
def live(
    database_url: str, redis_url: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[str, dict[str, str]]]:
    """A real gateway on a free port and an admin token for it."""
    app_settings = Settings.from_env(
        {
            "DATABASE_URL": database_url,
            "REDIS_URL": redis_url,
            "VAULTCRAFT_DATA_DIR": str(tmp_path_factory.mktemp("fuzz")),
            "VAULTCRAFT_JWT_SECRET": JWT_SECRET,
            "VAULTCRAFT_BCRYPT_ROUNDS": "4",
        }
    )
    with LiveGateway(app_settings) as base_url:
        resp = requests.post(
            f"{base_url}{API}/auth/signup",
            json={
                "email": f"fuzz-{uuid.uuid4().hex}@example.com",
                "password": PASSWORD,
                "full_name": "Fuzz",
                "organization_name": "Fuzz",
            },
            timeout=10,
        )
        assert resp.status_code == 201, resp.text
        yield base_url, {"Authorization": f"Bearer {resp.json()['access_token']}"}
    with redis.Redis.from_url(redis_url) as conn:
        for prefix in (ADDRESS_PREFIX, SIGNUP_PREFIX):
            for key in conn.scan_iter(f"{prefix}*"):
                conn.delete(key)


schema = schemathesis.openapi.from_dict(DOCUMENT)


@schema.parametrize()
@settings(max_examples=30, deadline=None, suppress_health_check=list(HealthCheck))
def test_fuzzed_requests_never_get_a_server_error(
    case: schemathesis.Case, live: tuple[str, dict[str, str]]
) -> None:
    """Generated valid and invalid requests to every route, authenticated as an admin: never a
    5xx, and every answer is one the document declares, in the declared shape and type."""
    base_url, headers = live
    response = case.call(base_url=base_url, headers=headers, timeout=10)
    case.validate_response(
        response,
        checks=[
            not_a_server_error,
            status_code_conformance,
            content_type_conformance,
            response_schema_conformance,
        ],
    )
