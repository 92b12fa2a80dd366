"""The OpenAPI 3.1 document, generated from the route declarations of `gateway.registry`.

Nothing here is written by hand per route: paths, parameters (path UUIDs and query
models), bodies, success and problem responses, and security all come from each
`RouteSpec`. Adding a route to a registered table adds it here.
"""

from __future__ import annotations

from http import HTTPStatus
from importlib.metadata import PackageNotFoundError, version
from typing import Any

from pydantic import BaseModel
from pydantic.json_schema import models_json_schema

from gateway.examples import BODY_EXAMPLES, problem_example
from gateway.field_docs import FIELD_DOCS
from gateway.openapi_examples import response_example
from gateway.registry import RouteSpec
from gateway.route_spec import HeaderParam

_REF = "#/components/schemas/{model}"
_PROBLEM = "application/problem+json"

_REQUEST_ID_HEADER = {"$ref": "#/components/headers/RequestId"}
_BEARER_HELP = (
    "A user's access token from `POST /auth/login`, or an API key from `POST /api-keys` "
    "(`vk_...`, shown once). A key acts for its organization within its scopes: each "
    "operation's `x-api-key-scope` (also listed in its security requirement) is the scope "
    "it needs; `admin` keys reach every operation.\n\n"
    "Create (admin): `curl -X POST https://host/api/v1/api-keys -H 'Authorization: Bearer "
    '$TOKEN\' -H \'Content-Type: application/json\' -d \'{"name": "payouts", "scopes": '
    '["transfers:write"]}\'`\n\n'
    "Use: `curl -H 'Authorization: Bearer vk_...' https://host/api/v1/transactions`, or in "
    "Python `httpx.get(url, headers={'Authorization': f'Bearer {key}'})`.\n\n"
    "Every authenticated answer carries `RateLimit-Limit`, `RateLimit-Remaining` and "
    "`RateLimit-Reset`; over the limit `429 rate_limited` with `Retry-After`."
)

_PROBLEM_SCHEMA: dict[str, Any] = {
    "type": "object",
    "description": "RFC 9457 problem details; `code` is stable and meant for branching.",
    "required": ["type", "title", "status", "detail", "code", "errors"],
    "properties": {
        "type": {"type": "string", "examples": ["urn:vaultcraft:problem:invalid_amount"]},
        "title": {"type": "string"},
        "status": {"type": "integer"},
        "detail": {"type": "string"},
        "code": {"type": "string", "examples": ["invalid_amount"]},
        "errors": {
            "type": "array",
            "items": {
                "type": "object",
                "required": ["field", "message"],
                "properties": {
                    "field": {
                        "type": "string",
                        "description": "Path of the field at fault, such as"
                        " `transfers[1].amount`, or a header name",
                        "examples": ["amount"],
                    },
                    "message": {"type": "string", "description": "What is wrong with it"},
                },
            },
        },
    },
}


def build_openapi(specs: list[RouteSpec]) -> dict[str, Any]:
    schemas, refs = _model_schemas(specs)
    query_models = {spec.query.__name__ for spec in specs if spec.query is not None}
    paths: dict[str, dict[str, Any]] = {}
    for spec in specs:
        paths.setdefault(spec.full_path, {})[spec.method.lower()] = _operation(spec, schemas, refs)
    for name in query_models:  # their fields became parameters; the models are not used
        schemas.pop(name, None)
    schemas["Problem"] = _PROBLEM_SCHEMA
    for model in schemas.values():
        _describe_properties(model)
    for operation in (op for methods in paths.values() for op in methods.values()):
        _add_response_examples(operation, schemas)
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "VaultCraft",
            "version": _version(),
            "description": (
                "Multi-tenant money movement and double-entry ledger. Money is a decimal "
                "string in major units with an ISO 4217 currency, never a number. Another "
                "organization's resources answer 404 exactly as if they did not exist; a "
                "member acting on a wallet that is not theirs gets 403. Every error is an "
                "RFC 9457 problem with a stable `code`."
            ),
        },
        "paths": paths,
        "components": {
            "schemas": dict(sorted(schemas.items())),
            "headers": {
                "RequestId": {
                    "description": "The request's id: echoed from the request, or generated",
                    "schema": {"type": "string"},
                }
            },
            "securitySchemes": {
                "bearerAuth": {
                    "type": "http",
                    "scheme": "bearer",
                    "bearerFormat": "JWT or API key (vk_...)",
                    "description": _BEARER_HELP,
                }
            },
        },
    }


def _describe_properties(model: dict[str, Any]) -> None:
    """Give a property without a description of its own the API-wide meaning of its name."""
    for name, prop in model.get("properties", {}).items():
        if "description" not in prop and name in FIELD_DOCS:
            prop["description"] = FIELD_DOCS[name]


def _model_schemas(
    specs: list[RouteSpec],
) -> tuple[dict[str, Any], dict[tuple[Any, str], dict[str, Any]]]:
    wanted: list[tuple[type[BaseModel], Any]] = []
    for spec in specs:
        for model, mode in ((spec.body, "validation"), (spec.query, "validation")):
            if model is not None:
                wanted.append((model, mode))
        if isinstance(spec.response, type) and issubclass(spec.response, BaseModel):
            wanted.append((spec.response, "serialization"))
    unique = list(dict.fromkeys(wanted))
    keys, defs = models_json_schema(unique, ref_template=_REF)
    refs: dict[tuple[Any, str], dict[str, Any]] = dict(keys.items())
    return dict(defs.get("$defs", {})), refs


def _operation(
    spec: RouteSpec, schemas: dict[str, Any], refs: dict[tuple[Any, str], dict[str, Any]]
) -> dict[str, Any]:
    operation: dict[str, Any] = {
        "operationId": spec.operation_id,
        "summary": spec.summary,
        "tags": [spec.tag],
        "security": [{"bearerAuth": [spec.scope]}] if spec.auth else [],
        "parameters": _parameters(spec, schemas, refs),
        "responses": _responses(spec, refs),
    }
    if spec.auth:
        operation["x-api-key-scope"] = spec.scope
    if spec.description:
        operation["description"] = spec.description
    if spec.deprecated:
        operation["deprecated"] = True
    if spec.body is not None:
        media: dict[str, Any] = {"schema": refs[(spec.body, "validation")]}
        if spec.body.__name__ in BODY_EXAMPLES:
            media["example"] = BODY_EXAMPLES[spec.body.__name__]
        operation["requestBody"] = {
            "required": not spec.optional_body,
            "content": {"application/json": media},
        }
    return operation


def _parameters(
    spec: RouteSpec, schemas: dict[str, Any], refs: dict[tuple[Any, str], dict[str, Any]]
) -> list[dict[str, Any]]:
    params: list[dict[str, Any]] = [
        {
            "name": name,
            "in": "path",
            "required": True,
            "description": FIELD_DOCS.get(name, "The resource's id"),
            "schema": {"type": "string", "format": "uuid"},
        }
        for name in spec.path_params
    ]
    params.extend(_header_parameter(header) for header in spec.headers)
    if spec.query is None:
        return params
    model = schemas[refs[(spec.query, "validation")]["$ref"].rsplit("/", 1)[-1]]
    required = set(model.get("required", []))
    for name, schema in model.get("properties", {}).items():
        param: dict[str, Any] = {
            "name": name,
            "in": "query",
            "required": name in required,
            "schema": {k: v for k, v in schema.items() if k != "description"},
        }
        if "description" in schema or name in FIELD_DOCS:
            param["description"] = schema.get("description", FIELD_DOCS.get(name))
        if schema.get("type") == "object":  # `?metadata[key]=value`
            param |= {"style": "deepObject", "explode": True}
        params.append(param)
    return params


def _header_parameter(header: HeaderParam) -> dict[str, Any]:
    schema: dict[str, Any] = {"type": "string"}
    if header.pattern is not None:
        schema["pattern"] = header.pattern
    if header.max_length is not None:
        schema.update(minLength=1, maxLength=header.max_length)
    return {
        "name": header.name,
        "in": "header",
        "required": header.required,
        "description": header.description,
        "schema": schema,
        "example": header.example,
    }


def _success_headers(spec: RouteSpec) -> dict[str, Any]:
    headers: dict[str, Any] = {"X-Request-ID": _REQUEST_ID_HEADER}
    if spec.status in (201, 202) and spec.created_path:
        headers["Location"] = {
            "description": f"Where the created resource is read: `{spec.created_path}`",
            "schema": {"type": "string"},
        }
    return headers


def _responses(spec: RouteSpec, refs: dict[tuple[Any, str], dict[str, Any]]) -> dict[str, Any]:
    success: dict[str, Any] = {
        "description": HTTPStatus(spec.status).phrase,
        "headers": _success_headers(spec),
    }
    if spec.status == 204:
        pass  # No Content: nothing to describe
    elif (spec.response, "serialization") in refs:
        schema: dict[str, Any] = refs[(spec.response, "serialization")]
        success["content"] = {spec.content_type: {"schema": schema}}
    elif spec.content_type == "application/json":
        success["content"] = {"application/json": {"schema": {"type": "object"}}}
    else:
        success["content"] = {spec.content_type: {"schema": {"type": "string"}}}
    if spec.also_csv:
        success["content"]["text/csv"] = {"schema": {"type": "string"}}
    responses: dict[str, Any] = {str(spec.status): success}
    if any(header.name == "Idempotency-Key" for header in spec.headers):
        responses["200"] = _replay_response(success)
    for status in sorted(_error_statuses(spec)):
        problem: dict[str, Any] = {
            "description": HTTPStatus(status).phrase,
            "headers": {"X-Request-ID": _REQUEST_ID_HEADER},
            "content": {_PROBLEM: {"schema": {"$ref": "#/components/schemas/Problem"}}},
        }
        if status in (429, 503):
            problem["headers"]["Retry-After"] = {
                "description": "Seconds to wait before retrying",
                "schema": {"type": "integer"},
            }
        responses[str(status)] = problem
    return responses


def _add_response_examples(operation: dict[str, Any], schemas: dict[str, Any]) -> None:
    """A whole example body on every JSON response: problems by status, the others built
    from their schema (`gateway.openapi_examples`)."""
    for status, response in operation["responses"].items():
        for media_type, media in response.get("content", {}).items():
            if media_type == _PROBLEM:
                media["example"] = problem_example(int(status))
            elif media_type == "application/json" and "$ref" in media["schema"]:
                media["example"] = response_example(media["schema"], schemas)


def _replay_response(success: dict[str, Any]) -> dict[str, Any]:
    """A repeated `Idempotency-Key` with the same body answers 200 with the stored result."""
    replay = {k: v for k, v in success.items() if k != "headers"}
    replay["description"] = "Replay of an earlier request with the same key and body"
    replay["headers"] = {
        "X-Request-ID": _REQUEST_ID_HEADER,
        "Idempotent-Replayed": {
            "description": "`true`: nothing new was stored",
            "schema": {"type": "string", "enum": ["true"]},
        },
    }
    return replay


BEFORE_ROUTING = {400, 431}
"""What any request may get before it reaches a route (`gateway.protocol_errors`): a message
that is not valid HTTP/1.1, or headers too large (and `400 invalid_cursor` on lists)."""


def _error_statuses(spec: RouteSpec) -> set[int]:
    statuses = set(spec.errors) | BEFORE_ROUTING
    if spec.auth:
        statuses.update((401, 403, 429))
    if spec.body is not None or spec.query is not None or spec.path_params:
        statuses.add(422)
    if spec.body is not None:
        statuses.update((413, 415))
    if spec.auth or spec.body is not None:
        statuses.add(503)
    return statuses


def _version() -> str:
    try:
        return version("vaultcraft")
    except PackageNotFoundError:
        return "0.0.0"
