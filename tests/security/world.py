"""Two organizations with something of everything, and every registered route made callable.

`World` holds, for each side, the ids a route's path parameters and bodies can name:

- `ours`: our admin and the admin's wallet and transfer;
- `member`: a member of our organization and their own wallet and transfer;
- `colleague`: another member of ours, whose wallet and transfer the member may not touch;
- `rival`: another organization, of which no route may reveal or change anything.

Path parameters are resolved by name through `PARAM_ROWS`: a new route with a parameter
not listed there fails the matrix tests until it is added, so no route goes unchecked.
"""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass, field
from typing import Any

from aiohttp.test_utils import TestClient
from sqlalchemy import Engine, text

from gateway.registry import RouteSpec
from gateway.state import ROUTES
from tests.support.api import PASSWORD, Account, add_user, create_wallet, signup
from tests.support.ledger_sql import post_transfer

CURRENCY = "USD"

PARAM_ROWS: dict[str, tuple[str, str, str, str]] = {
    # path parameter: (table, id column, organization column, row to insert if none exists)
    "wallet_id": ("wallets", "id", "organization_id", ""),
    "transaction_id": ("transactions", "id", "organization_id", ""),
    "user_id": ("users", "id", "organization_id", ""),
    "organization_id": ("organizations", "id", "id", ""),
    "event_id": ("outbox", "event_id", "organization_id", ""),
    "action_id": (
        "hold_actions",
        "id",
        "organization_id",
        "INSERT INTO hold_actions (organization_id, transaction_id, action, idempotency_key,"
        " request_hash, status, failure_code, decided_at)"
        " SELECT :org, id, 'VOID', 'world-void', 'x', 'FAILED', 'not_held', now()"
        " FROM transactions WHERE organization_id = :org ORDER BY seq LIMIT 1",
    ),
    "webhook_id": (
        "webhooks",
        "id",
        "organization_id",
        "INSERT INTO webhooks (organization_id, url, events, secret)"
        " VALUES (:org, 'https://hooks.example.com/x', '[\"transfer.completed\"]', 'whsec_x')",
    ),
    "reconciliation_id": (
        "reconciliation_runs",
        "id",
        "organization_id",
        "INSERT INTO reconciliation_runs (organization_id, status) VALUES (:org, 'COMPLETED')",
    ),
    "settlement_id": (
        "settlements",
        "id",
        "payer_organization_id",
        "INSERT INTO settlements (payer_organization_id, payee_organization_id, currency,"
        " gross_payer_to_payee, gross_payee_to_payer, net_amount, transfer_count)"
        " VALUES (:org, :org, 'USD', 0, 0, 0, 0)",
    ),
    "key_id": (
        "api_keys",
        "id",
        "organization_id",
        "INSERT INTO api_keys (organization_id, name, scopes, secret_hash, created_by)"
        " SELECT :org, 'world key', '[\"admin\"]', sha256('x'::bytea), id FROM users"
        " WHERE organization_id = :org LIMIT 1",
    ),
    "rule_id": (
        "risk_rules",
        "id",
        "organization_id",
        "INSERT INTO risk_rules (organization_id, kind, max_amount) VALUES (:org, 'MAX_AMOUNT', 1)",
    ),
}

_TRANSFER = {
    "source_wallet_id": "{wallet_id}",
    "destination_wallet_id": "{destination_wallet_id}",
    "amount": "0.01",
    "currency": CURRENCY,
}

BODIES: dict[str, dict[str, Any]] = {
    # request body model: a valid body; "{name}" is replaced by the side's id of that name
    "Signup": {
        "email": "{email}",
        "password": PASSWORD,
        "full_name": "Sam",
        "organization_name": "Sam's",
    },
    "Login": {"email": "{email}", "password": PASSWORD},
    "CreateUser": {"email": "{email}", "password": PASSWORD, "full_name": "Sam", "role": "MEMBER"},
    "CreateTransfer": _TRANSFER,
    "CreateBatch": {"transfers": [{**_TRANSFER, "idempotency_key": "{key}"}]},
    "ReverseTransfer": {},
    "CreateMulti": {"postings": [_TRANSFER]},
    "CaptureHold": {},
    "VoidHold": {},
    "CreateWallet": {"type": "PRIMARY", "currency": CURRENCY, "user_id": "{user_id}"},
    "UpdateWallet": {"status": "ACTIVE"},
    "CreateWebhook": {"url": "https://hooks.example.com/x", "events": ["transfer.completed"]},
    "UpdateWebhook": {"events": ["transfer.failed"]},
    "CreateRiskRule": {"kind": "MAX_AMOUNT", "max_amount": "10.00", "wallet_id": "{wallet_id}"},
    "UpdateRiskRule": {"max_amount": "20.00"},
    # Names the side's own organization: refused as `self_counterparty`, so nothing is written.
    "AddCounterparty": {"organization_id": "{organization_id}"},
    "RequestReconciliation": {"mode": "INCREMENTAL"},
    "CreateApiKey": {"name": "matrix key", "scopes": ["wallets:read"]},
    "UpdateUser": {"is_active": True},
    # A wrong current password: refused as `wrong_password`, so no token is retired.
    "ChangePassword": {"current_password": "not the password", "new_password": PASSWORD + "!"},
}

ID_FIELDS = ("wallet_id", "destination_wallet_id", "user_id", "transaction_id")
"""Placeholders that name a resource (as opposed to free values such as `{email}`)."""

_PLACEHOLDER = re.compile(r"^{(\w+)}$")


@dataclass
class Side:
    account: Account
    ids: dict[str, str] = field(default_factory=dict)

    @property
    def headers(self) -> dict[str, str]:
        return self.account.headers


@dataclass
class World:
    client: TestClient
    engine: Engine
    ours: Side
    member: Side
    colleague: Side
    rival: Side

    @property
    def routes(self) -> list[RouteSpec]:
        app = self.client.app
        assert app is not None
        return [spec for spec in app[ROUTES] if spec.auth]

    def paths(self, spec: RouteSpec, side: Side) -> list[str]:
        """The route's path and aliases with path parameters naming `side`'s resources."""
        resolved = []
        for template in (spec.full_path, *spec.aliases):
            for name in spec.path_params:
                template = template.replace(f"{{{name}}}", self.id_of(side, name))
            resolved.append(template)
        return resolved

    def id_of(self, side: Side, name: str) -> str:
        if name not in side.ids:
            side.ids[name] = _row_of(self.engine, name, side.account.org["id"])
        return side.ids[name]

    def body(self, spec: RouteSpec, side: Side, **override: str) -> Any:
        """A valid body for the route naming `side`'s resources (`override` names others)."""
        if spec.body is None:
            return None
        name = spec.body.__name__
        assert name in BODIES, f"add a valid sample body for {name} to BODIES"
        values = {"email": f"sam-{uuid.uuid4().hex[:10]}@example.com", "key": str(uuid.uuid4())}
        return _fill(
            BODIES[name], lambda key: override.get(key) or values.get(key) or self.id_of(side, key)
        )

    def identifiers(self, side: Side) -> set[str]:
        """Everything that would show `side`'s data leaked: its ids and its users' emails."""
        org = side.account.org["id"]
        with self.engine.connect() as conn:
            found = {org, side.account.user["email"]}
            for table, column in (
                ("wallets", "id"),
                ("transactions", "id"),
                ("users", "id"),
                ("users", "email"),
            ):
                found |= {
                    str(v)
                    for (v,) in conn.execute(
                        text(f"SELECT {column} FROM {table} WHERE organization_id = :o"),
                        {"o": org},
                    )
                }
        return found


def admin_only(spec: RouteSpec) -> bool:
    """Routes whose summary marks them "(admin)", wherever in the summary it stands."""
    return "(admin)" in spec.summary


def _fill(template: Any, value_of: Any) -> Any:
    if isinstance(template, dict):
        return {k: _fill(v, value_of) for k, v in template.items()}
    if isinstance(template, list):
        return [_fill(v, value_of) for v in template]
    if isinstance(template, str) and (match := _PLACEHOLDER.match(template)):
        return value_of(match.group(1))
    return template


def _row_of(engine: Engine, param: str, org: str) -> str:
    assert param in PARAM_ROWS, (
        f"path parameter {param!r} is not in tests/security/world.py PARAM_ROWS; add its table"
    )
    table, id_column, org_column, insert = PARAM_ROWS[param]
    query = text(f"SELECT {id_column} FROM {table} WHERE {org_column} = :org LIMIT 1")
    with engine.begin() as conn:
        found = conn.execute(query, {"org": org}).scalar()
        if found is None:
            assert insert, f"the test world has no {table} row for organization {org}"
            conn.execute(text(insert), {"org": org})
            found = conn.execute(query, {"org": org}).scalar_one()
    return str(found)


async def build_world(client: TestClient, engine: Engine) -> World:
    admin = await signup(client, currency=CURRENCY)
    member = await add_user(client, admin.token)
    colleague = await add_user(client, admin.token)
    rival_admin = await signup(client, currency=CURRENCY, organization_name="Rival")
    sides = []
    for account, owner_token in (
        (admin, admin.token),
        (member, member.token),
        (colleague, colleague.token),
        (rival_admin, rival_admin.token),
    ):
        wallet = await create_wallet(client, owner_token, currency=CURRENCY)
        other = await create_wallet(client, owner_token, currency=CURRENCY)
        system = _system_wallet(engine, account.org["id"])
        funding = post_transfer(engine, system, wallet["id"], 100_00)
        sides.append(
            Side(
                account,
                {
                    "wallet_id": wallet["id"],
                    "destination_wallet_id": other["id"],
                    "transaction_id": str(funding),
                    "user_id": account.user["id"],
                },
            )
        )
    world = World(client, engine, *sides)
    for spec in world.routes:  # every fixture row now, so tests' row counts see none appear
        world.paths(spec, world.ours)
    return world


def _system_wallet(engine: Engine, org: str) -> str:
    with engine.connect() as conn:
        return str(
            conn.execute(
                text("SELECT id FROM wallets WHERE organization_id = :o AND type = 'SYSTEM'"),
                {"o": org},
            ).scalar_one()
        )
