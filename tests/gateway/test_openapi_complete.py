"""The OpenAPI document is complete enough for Swagger UI and generated clients as is.

Walks the whole document: an operation, parameter, header or field without a description
fails, as does a request body without a valid example. Then a transfer is made the way a
generated client makes it: from the operation's declared parameters and nothing else.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from gateway.examples import BODY_EXAMPLES, RESPONSE_EXAMPLES
from gateway.route_spec import RouteSpec
from gateway.state import ROUTES
from runtime.settings import Settings
from tests.gateway.test_openapi import DOCUMENT, offline_app
from tests.support.api import API, PASSWORD
from tests.support.fixtures import JWT_SECRET
from tests.support.live_server import LiveGateway

OPERATIONS = [
    (f"{method.upper()} {path}", operation)
    for path, methods in DOCUMENT["paths"].items()
    for method, operation in methods.items()
]


def _undescribed_properties(name: str, schema: dict[str, Any]) -> Iterator[str]:
    for field, prop in schema.get("properties", {}).items():
        if not prop.get("description"):
            yield f"{name}.{field}"
        yield from _undescribed_properties(f"{name}.{field}", prop)
        yield from _undescribed_properties(f"{name}.{field}[]", prop.get("items", {}))


def test_every_operation_has_a_summary_and_a_description() -> None:
    missing = [op for op, o in OPERATIONS if not (o.get("summary") and o.get("description"))]
    assert missing == []


def test_every_parameter_and_response_is_described() -> None:
    params = [
        f"{op} {p['in']}:{p['name']}"
        for op, o in OPERATIONS
        for p in o["parameters"]
        if not p.get("description")
    ]
    responses = [
        f"{op} {status}"
        for op, o in OPERATIONS
        for status, r in o["responses"].items()
        if not r.get("description")
    ]
    headers = [
        f"{op} {status} {h}"
        for op, o in OPERATIONS
        for status, r in o["responses"].items()
        for h, spec in r.get("headers", {}).items()
        if "$ref" not in spec and not spec.get("description")
    ]
    assert (params, responses, headers) == ([], [], [])


def test_every_schema_field_is_described_and_no_name_leaks_a_module() -> None:
    schemas = DOCUMENT["components"]["schemas"]
    missing = [f for name, s in schemas.items() for f in _undescribed_properties(name, s)]
    assert missing == []
    assert [name for name in schemas if "__" in name or "." in name] == []


def test_every_request_body_has_an_example_its_model_accepts() -> None:
    for spec in _document_specs():
        if spec.body is None:
            continue
        media = DOCUMENT["paths"][spec.full_path][spec.method.lower()]["requestBody"]
        example = media["content"]["application/json"].get("example")
        assert example is not None, spec.full_path
        assert example == BODY_EXAMPLES[spec.body.__name__]
        spec.body.model_validate_json(json.dumps(example))


def test_every_response_body_has_a_whole_example_its_model_accepts() -> None:
    """Success bodies validate with the route's model; problems carry their own status."""
    specs = {(spec.method.upper(), spec.full_path): spec for spec in _document_specs()}
    missing = []
    for op, operation in OPERATIONS:
        method, path = op.split(" ", 1)
        for status, response in operation["responses"].items():
            for media_type, media in response.get("content", {}).items():
                if media_type not in ("application/json", "application/problem+json"):
                    continue
                if media["schema"].get("type") == "object" and "$ref" not in media["schema"]:
                    continue  # the OpenAPI document itself: no model to exemplify
                example = media.get("example")
                if example is None:
                    missing.append(f"{op} {status}")
                elif media_type == "application/problem+json":
                    assert example["status"] == int(status), (op, status)
                    assert example["type"].endswith(example["code"]), (op, status)
                else:
                    model = specs[(method, path)].response
                    model.model_validate_json(json.dumps(example))  # type: ignore[union-attr]
    assert missing == []


def test_the_main_operations_show_the_hand_written_resources() -> None:
    transfer, wallet = RESPONSE_EXAMPLES["TransactionOut"], RESPONSE_EXAMPLES["WalletOut"]
    ops = dict(OPERATIONS)

    def example(op: str, status: str = "200") -> Any:
        method, path = op.split(" ", 1)
        response = ops[f"{method} {API}{path}"]["responses"][status]
        return response["content"]["application/json"]["example"]

    assert example("POST /transactions/transfer", "202") == transfer
    assert example("POST /transactions/transfer", "200") == transfer  # the replay
    assert example("GET /transactions/{transaction_id}") == transfer
    assert example("GET /transactions")["data"] == [transfer]
    assert example("POST /transactions/batch", "202") == {"data": [transfer]}
    assert example("GET /wallets/{wallet_id}") == wallet
    assert example("GET /wallets")["data"] == [wallet]
    assert example("GET /transactions/{transaction_id}/ledger") == {
        "data": [RESPONSE_EXAMPLES["EntryOut"]]
    }
    problem = ops[f"POST {API}/transactions/transfer"]["responses"]["422"]
    assert problem["content"]["application/problem+json"]["example"]["errors"][0] == {
        "field": "amount",
        "message": "at most 2 decimal places for INR",
    }


def test_idempotent_operations_declare_the_header_and_the_replay() -> None:
    for op in (
        "POST /api/v1/transactions/transfer",
        "POST /api/v1/wallets/transfer",
        "POST /api/v1/transactions/{transaction_id}/reverse",
    ):
        operation = dict(OPERATIONS)[op]
        (header,) = [p for p in operation["parameters"] if p["in"] == "header"]
        assert (header["name"], header["required"]) == ("Idempotency-Key", True)
        assert header["schema"]["maxLength"] == 255 and header["example"]
        assert "Idempotent-Replayed" in operation["responses"]["200"]["headers"]
        assert "Location" in operation["responses"]["202"]["headers"]
    assert dict(OPERATIONS)["POST /api/v1/wallets/transfer"]["deprecated"] is True
    assert "deprecated" not in dict(OPERATIONS)["POST /api/v1/transactions/transfer"]
    reverse = dict(OPERATIONS)["POST /api/v1/transactions/{transaction_id}/reverse"]
    assert reverse["requestBody"]["required"] is False


def test_every_creation_declares_where_to_read_what_it_created() -> None:
    created = {op: o["responses"]["201"] for op, o in OPERATIONS if "201" in o["responses"]}
    assert len(created) >= 6
    assert [op for op, r in created.items() if "Location" not in r["headers"]] == []
    for spec in _document_specs():
        if spec.created_path:
            assert API + spec.created_path in DOCUMENT["paths"], spec.created_path


def _document_specs() -> list[RouteSpec]:
    return list(offline_app()[ROUTES])


@pytest.fixture(scope="module")
def gateway(
    database_url: str, redis_url: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[httpx.Client]:
    settings = Settings.from_env(
        {
            "DATABASE_URL": database_url,
            "REDIS_URL": redis_url,
            "VAULTCRAFT_DATA_DIR": str(tmp_path_factory.mktemp("document")),
            "VAULTCRAFT_JWT_SECRET": JWT_SECRET,
            "VAULTCRAFT_BCRYPT_ROUNDS": "4",
        }
    )
    with LiveGateway(settings) as base_url, httpx.Client(base_url=base_url) as http:
        yield http


def _request(operation: dict[str, Any], path: str, values: dict[str, str]) -> dict[str, Any]:
    """What a generated client sends: every declared parameter filled from `values`, the body
    from the operation's own example with `values` laid over the fields it names."""
    headers: dict[str, str] = {}
    for param in operation["parameters"]:
        if param["required"] or param["name"] in values:
            if param["in"] == "header":
                headers[param["name"]] = values[param["name"]]
            elif param["in"] == "path":
                path = path.replace("{" + param["name"] + "}", values[param["name"]])
    example = operation["requestBody"]["content"]["application/json"]["example"]
    body = {k: values.get(k, v) for k, v in example.items()}
    return {"method": "POST", "url": path, "headers": headers, "json": body}


def test_a_transfer_made_from_the_declared_parameters_is_accepted(
    gateway: httpx.Client,
) -> None:
    signup = gateway.post(
        f"{API}/auth/signup",
        json={
            "email": f"doc-{uuid.uuid4().hex}@example.com",
            "password": PASSWORD,
            "full_name": "Doc",
            "organization_name": "Doc",
            "default_currency": "INR",
        },
    )
    assert signup.status_code == 201, signup.text
    assert signup.headers["Location"] == f"{API}/auth/me"
    auth = {"Authorization": f"Bearer {signup.json()['access_token']}"}
    system = gateway.get(f"{API}/wallets", params={"type": "SYSTEM"}, headers=auth)
    wallet = gateway.post(f"{API}/wallets", json={"type": "PRIMARY"}, headers=auth)
    assert wallet.headers["Location"] == f"{API}/wallets/{wallet.json()['id']}"
    values = {
        "Idempotency-Key": f"doc-{uuid.uuid4()}",
        "source_wallet_id": system.json()["data"][0]["id"],
        "destination_wallet_id": wallet.json()["id"],
    }
    operation = DOCUMENT["paths"][f"{API}/transactions/transfer"]["post"]
    request = _request(operation, f"{API}/transactions/transfer", values)
    request["headers"].update(auth)

    first = gateway.request(**request)
    again = gateway.request(**request)

    assert first.status_code == 202, first.text
    declared = {name.lower() for name in operation["responses"]["202"]["headers"]}
    assert declared <= set(first.headers.keys())
    assert first.headers["Location"] == f"{API}/transactions/{first.json()['id']}"
    assert (first.json()["amount"], first.json()["status"]) == ("25.00", "PENDING")
    assert again.status_code == 200 and again.headers["Idempotent-Replayed"] == "true"
    assert again.json()["id"] == first.json()["id"]
    del request["headers"]["Idempotency-Key"]
    assert gateway.request(**request).json()["code"] == "idempotency_key_required"
