"""Audit records: who did what, from where, within which request.

`audit_insert` only builds the INSERT, so the caller runs it in the same database
transaction as the change it records, whether on a sync or an async connection.
The table is append-only (a trigger refuses UPDATE and DELETE).
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any

import orjson
from sqlalchemy import Insert

from ledger_core.acting import AuditContext as AuditContext
from ledger_core.ids import uuid_text
from ledger_core.persistence.arrays import pg_array, pg_uuid_array
from ledger_core.persistence.tables import audit_logs

_SECRET_WORDS = ("password", "hash", "token", "secret")
"""Detail keys containing these never reach the audit trail."""


def audit_insert(
    ctx: AuditContext,
    action: str,
    *,
    resource_type: str | None = None,
    resource_id: object = None,
    details: dict[str, Any] | None = None,
) -> Insert:
    """The INSERT of one audit record for `action` (such as ``"wallet.created"``)."""
    return audit_logs.insert().values(
        audit_values(
            ctx, action, resource_type=resource_type, resource_id=resource_id, details=details
        )
    )


def audit_values(
    ctx: AuditContext,
    action: str,
    *,
    resource_type: str | None = None,
    resource_id: object = None,
    details: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """One audit record's column values; many of them insert with one `audit_logs.insert()`."""
    safe = dict(details) if details else {}
    leaked = _secret_keys(tuple(safe))
    if leaked:
        raise ValueError(f"audit details may not carry secrets: {list(leaked)}")
    if ctx.actor_type != "user":
        safe["actor_type"] = ctx.actor_type
    return {
        "organization_id": ctx.organization_id,
        "actor_id": ctx.actor_id,
        "action": action,
        "resource_type": resource_type,
        "resource_id": None if resource_id is None else uuid_text(resource_id),
        "client_address": _clip(ctx.client_address, 64),
        "user_agent": _clip(ctx.user_agent, 512),
        "request_id": _clip(ctx.request_id, 128),
        "details": safe,
    }


@lru_cache(maxsize=1024)
def _secret_keys(keys: tuple[str, ...]) -> tuple[str, ...]:
    """The detail keys that look like secrets; a use case audits the same few sets of keys
    again and again, so each set is checked once."""
    return tuple(key for key in keys if any(word in key.lower() for word in _SECRET_WORDS))


_INSERT_FOR_INSERTED = """
    INSERT INTO audit_logs (organization_id, actor_id, action, resource_type, resource_id,
                            client_address, user_agent, request_id, details)
    SELECT v.organization_id, v.actor_id, v.action, v.resource_type, v.resource_id,
           v.client_address, v.user_agent, v.request_id, CAST(v.details AS jsonb)
    FROM unnest(
        CAST(:organization_ids AS uuid[]), CAST(:actor_ids AS uuid[]), CAST(:actions AS text[]),
        CAST(:resource_types AS text[]), CAST(:resource_ids AS text[]),
        CAST(:client_addresses AS text[]), CAST(:user_agents AS text[]),
        CAST(:request_ids AS text[]), CAST(:details AS text[])
    ) WITH ORDINALITY AS v(organization_id, actor_id, action, resource_type, resource_id,
                           client_address, user_agent, request_id, details, n)
    JOIN inserted ON inserted.id = CAST(v.resource_id AS uuid)
    ORDER BY v.n
"""

_TEXT_COLUMNS = {
    "actions": "action",
    "resource_types": "resource_type",
    "resource_ids": "resource_id",
    "client_addresses": "client_address",
    "user_agents": "user_agent",
    "request_ids": "request_id",
}
"""`_INSERT_FOR_INSERTED`'s text parameters and the record values each one gathers."""


def audit_inserted(records: list[dict[str, Any]]) -> tuple[str, dict[str, Any]]:
    """A data-modifying CTE (its text and parameters) for a statement whose CTE `inserted`
    returns the rows it stored: of `records` (`audit_values`), it writes those whose
    `resource_id` is the id of a row stored, in order, and no other."""
    params = {name: pg_array([r[key] for r in records]) for name, key in _TEXT_COLUMNS.items()}
    params["organization_ids"] = pg_uuid_array([r["organization_id"] for r in records])
    params["actor_ids"] = pg_uuid_array([r["actor_id"] for r in records])
    params["details"] = pg_array(orjson.dumps(r["details"]).decode() for r in records)
    return _INSERT_FOR_INSERTED, params


def _clip(value: str | None, size: int) -> str | None:
    return None if value is None else value[:size]
