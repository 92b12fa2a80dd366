"""A whole example body for any response schema, so every operation shows one.

The main resources have hand-written examples (`gateway.examples.RESPONSE_EXAMPLES`);
everything else is built from its JSON schema: a field's own `examples` first, then a
value its name suggests (money is a decimal string, a currency is ISO 4217), then one its
type and format allow. A model met inside another (the transfers of a batch, the items of
a page) uses its hand-written example when it has one, so a page of transfers shows real
transfers. `tests/gateway/test_openapi_complete.py` validates every example with its model.
"""

from __future__ import annotations

from typing import Any

from gateway.examples import RESPONSE_EXAMPLES

_ID = "0190f3a2-6a8e-7c41-9d2e-5b1f0c3d4e30"
_FORMATS: dict[str, Any] = {
    "uuid": _ID,
    "date-time": "2026-12-04T10:15:30Z",
    "date": "2026-12-04",
    "uri": "https://hooks.example.com/vaultcraft",
    "email": "ada@example.com",
}
_MONEY_SUFFIXES = ("amount", "balance", "total", "volume", "gross", "net", "limit", "held")
_NAMED: dict[str, Any] = {
    "currency": "INR",
    "email": "ada@example.com",
    "url": "https://hooks.example.com/vaultcraft",
    "name": "Main",
    "next_cursor": None,
    "metadata": {"order_id": "4711"},
    "code": "insufficient_funds",
    "checks": {"postgresql": "ok", "redis": "ok", "posting": "ok"},
    "access_token": "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiIuLi4ifQ.c2lnbmF0dXJl",
    "key": "vk_0190f3a26a8e7c419d2e5b1f0c3d4e30kR9vQ2mXw7LpZt4NbY8sHc1JdF6gA0eU",
    "prefix": "vk_0190f3a2",
    "status_code": 200,
    "last_status_code": 200,
    "expires_in": 3600,
    "rate_limit_per_s": 50,
    "rate_limit_burst": 100,
}
_ABSENT = frozenset(
    {
        "revoked_at",
        "expires_at",
        "last_used_at",
        "cancelled_at",
        "failed_at",
        "error",
        "last_error",
        "failure_code",
        "failure_message",
    }
)
"""Optional fields that are null in the common case, and so in the examples."""


def response_example(schema: dict[str, Any], schemas: dict[str, Any]) -> Any:
    """An example instance of `schema` (`$ref`s resolved in the document's `schemas`)."""
    return _value(schema, schemas, "", depth=0)


def _value(schema: dict[str, Any], schemas: dict[str, Any], name: str, depth: int) -> Any:
    if depth > 24:  # deep enough for every response; a recursive model would stop here
        return None
    ref = schema.get("$ref")
    if ref is not None:
        model = ref.rsplit("/", 1)[-1]
        if model in RESPONSE_EXAMPLES:
            return RESPONSE_EXAMPLES[model]
        return _value(schemas[model], schemas, name, depth + 1)
    for key in ("examples", "enum"):
        if schema.get(key):
            return schema[key][0]
    if "const" in schema:
        return schema["const"]
    if name in _NAMED:
        return _NAMED[name]
    branches = schema.get("anyOf") or schema.get("oneOf") or schema.get("allOf")
    if branches and name in _ABSENT and {"type": "null"} in branches:
        return None
    if branches:
        chosen = next((b for b in branches if b.get("type") != "null"), branches[0])
        return _value(chosen, schemas, name, depth + 1)
    return _typed(schema, schemas, name, depth)


def _typed(schema: dict[str, Any], schemas: dict[str, Any], name: str, depth: int) -> Any:
    kind = schema.get("type")
    if kind == "object":
        if "properties" in schema:
            return {
                field: _value(prop, schemas, field, depth + 1)
                for field, prop in schema["properties"].items()
            }
        values = schema.get("additionalProperties")
        if isinstance(values, dict):
            keys = schema.get("propertyNames", {}).get("enum") or [
                "COMPLETED" if "status" in name else "INR"
            ]
            return {keys[0]: _value(values, schemas, "", depth + 1)}
        return {}
    if kind == "array":
        return [_value(schema.get("items", {}), schemas, name, depth + 1)]
    if kind == "integer":
        return max(120 if name.endswith("_ms") else 3, int(schema.get("minimum", 1)))
    if kind == "number":
        return 1.5
    if kind == "boolean":
        return True
    if kind == "null":
        return None
    if schema.get("format") in _FORMATS:
        return _FORMATS[schema["format"]]
    if name.endswith(_MONEY_SUFFIXES):
        return "25.00"
    return name.replace("_", " ") or "text"
