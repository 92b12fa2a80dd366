"""Tenant isolation over every registered route, generated from the app's route table.

For each authenticated route: another organization's ids are `404 not_found` (as if
absent) and change nothing; reads never reveal another organization's ids or emails; a
member reaching for a colleague's resources, or calling an admin route, is `403
forbidden`. New routes are covered as soon as they are registered (see `world.py`).
"""

from __future__ import annotations

import uuid
from typing import Any

import pytest
import pytest_asyncio
from aiohttp.test_utils import TestClient
from sqlalchemy import Engine, text

from gateway.registry import RouteSpec
from tests.security.world import BODIES, ID_FIELDS, Side, World, build_world

pytestmark = pytest.mark.asyncio

COUNTED = ("organizations", "users", "wallets", "transactions", "ledger_entries", "outbox")


async def call(
    world: World, spec: RouteSpec, path: str, side: Side, body: Any = None, **params: str
) -> tuple[int, str]:
    headers = {**side.headers, "Idempotency-Key": str(uuid.uuid4())}
    resp = await world.client.request(
        spec.method, path, json=body, headers=headers, params=params or None
    )
    return resp.status, await resp.text()


def snapshot(engine: Engine, world: World) -> dict[str, Any]:
    """Row counts of every table a route writes, and the world's wallets and transfers."""
    orgs = [world.ours.account.org["id"], world.rival.account.org["id"]]
    with engine.connect() as conn:
        state: dict[str, Any] = {
            t: conn.execute(text(f"SELECT count(*) FROM {t}")).scalar_one() for t in COUNTED
        }
        for table, columns in (("wallets", "id, status, balance"), ("transactions", "id, status")):
            state[table + " rows"] = conn.execute(
                text(
                    f"SELECT md5(coalesce(string_agg(concat_ws('|', {columns}), ','"
                    f" ORDER BY id), '')) FROM {table}"
                    " WHERE organization_id = ANY(CAST(:orgs AS uuid[]))"
                ),
                {"orgs": orgs},
            ).scalar_one()
    return state


@pytest_asyncio.fixture
async def world(client: TestClient, engine: Engine) -> World:
    return await build_world(client, engine)


async def test_another_organizations_ids_are_not_found_on_any_route(
    world: World, engine: Engine
) -> None:
    routes = [spec for spec in world.routes if spec.path_params]
    assert routes, "no route takes an id"
    before = snapshot(engine, world)
    wrong = []
    for spec in routes:
        for path in world.paths(spec, world.rival):
            status, body = await call(world, spec, path, world.ours, world.body(spec, world.ours))
            if status != 404 or '"not_found"' not in body:
                wrong.append(f"{spec.method} {path}: {status} {body[:200]}")
    assert wrong == []
    assert snapshot(engine, world) == before


async def test_another_organizations_ids_in_bodies_are_not_found(
    world: World, engine: Engine
) -> None:
    """Each id a body names, swapped alone for another organization's, is a 404."""
    before = snapshot(engine, world)
    tried, wrong = 0, []
    for spec in world.routes:
        sample = world.body(spec, world.ours)
        names = [n for n in ID_FIELDS if n in repr(_placeholders(spec))]
        for name in names:
            rival_id = world.id_of(world.rival, name)
            body = world.body(spec, world.ours, **{name: rival_id})
            if body == sample:
                continue
            tried += 1
            for path in world.paths(spec, world.ours):
                status, text_ = await call(world, spec, path, world.ours, body)
                if status != 404:
                    wrong.append(f"{spec.method} {path} with their {name}: {status} {text_[:200]}")
    assert tried >= 4 and wrong == []
    assert snapshot(engine, world) == before


async def test_no_read_reveals_another_organizations_data(world: World) -> None:
    """Every GET, filtered by the other organization's ids where it can be, shows none of them."""
    theirs = world.identifiers(world.rival)
    leaks = []
    for spec in world.routes:
        if spec.method != "GET":
            continue
        params = {
            name: world.id_of(world.rival, name)
            for name in _uuid_query_params(spec)
            if name in ID_FIELDS
        }
        for path in world.paths(spec, world.ours):
            for query in ({}, params) if params else ({},):
                status, body = await call(world, spec, path, world.ours, **query)
                assert status < 500, f"{spec.method} {path}: {status}"
                leaked = sorted(i for i in theirs if i in body)
                if leaked:
                    leaks.append(f"GET {path} {query}: {leaked}")
    assert leaks == []


async def test_a_member_cannot_reach_a_colleague_or_admin_routes(
    world: World, engine: Engine
) -> None:
    """Admin routes, and a colleague's resources named in the path or as a debit, are 403."""
    before = snapshot(engine, world)
    wrong = []
    checked = 0
    for spec in world.routes:
        admin_only = spec.summary.endswith("(admin)")
        debits = "wallet_id" in repr(_placeholders(spec)) and spec.method == "POST"
        if not (admin_only or spec.path_params or debits):
            continue
        body = world.body(spec, world.member, **_colleague_ids(world, spec))
        for path in world.paths(spec, world.colleague):
            checked += 1
            status, text_ = await call(world, spec, path, world.member, body)
            if status != 403 or '"forbidden"' not in text_:
                wrong.append(f"{spec.method} {path}: {status} {text_[:200]}")
    assert checked >= 8 and wrong == []
    assert snapshot(engine, world) == before


async def test_a_members_lists_show_nothing_of_a_colleague(world: World) -> None:
    mine = set(world.member.ids.values())
    theirs = {world.colleague.ids["wallet_id"], world.colleague.ids["transaction_id"]} - mine
    for spec in world.routes:
        if spec.method == "GET" and not spec.path_params and not spec.summary.endswith("(admin)"):
            status, body = await call(world, spec, spec.full_path, world.member)
            assert status == 200, f"{spec.full_path}: {status} {body[:200]}"
            assert not [i for i in theirs if i in body], spec.full_path


def _placeholders(spec: RouteSpec) -> Any:
    return BODIES.get(spec.body.__name__, {}) if spec.body is not None else {}


def _colleague_ids(world: World, spec: RouteSpec) -> dict[str, str]:
    """In a body, the debited wallet is the colleague's; the rest stays the member's own."""
    return {"wallet_id": world.colleague.ids["wallet_id"]}


def _uuid_query_params(spec: RouteSpec) -> list[str]:
    if spec.query is None:
        return []
    return [
        name for name, info in spec.query.model_fields.items() if "UUID" in repr(info.annotation)
    ]
