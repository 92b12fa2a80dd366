"""List cursors are the server's own: anything else is `400 invalid_cursor`, on every list.

Every list route (a GET whose query model is a `PageQuery`) is taken from the route
table, so a new list is covered as soon as it is registered. A cursor is refused when
it is forged (the keyset spelled out by hand, as an attacker did to reach SQL with a
bigint where a UUID goes), truncated, garbage, signed with another key, or signed by the
server for another list or another organization; the server's own cursors still page.
"""

from __future__ import annotations

import base64
import uuid
from datetime import UTC, datetime

import pytest
import pytest_asyncio
from aiohttp.test_utils import TestClient
from sqlalchemy import Engine

from gateway.pagination import PageQuery, cursor_key, encode_cursor
from gateway.registry import RouteSpec
from gateway.state import SETTINGS
from ledger_core.persistence.pages import Keyset
from tests.security.world import Side, World, build_world

pytestmark = pytest.mark.asyncio

MOMENT = datetime(2026, 1, 1, tzinfo=UTC)


@pytest_asyncio.fixture
async def world(client: TestClient, engine: Engine) -> World:
    return await build_world(client, engine)


def list_routes(world: World) -> list[RouteSpec]:
    found = [
        spec
        for spec in world.routes
        if spec.method == "GET" and spec.query is not None and issubclass(spec.query, PageQuery)
    ]
    assert len(found) >= 10, [spec.path for spec in found]
    return found


def forged(text: str) -> str:
    return base64.urlsafe_b64encode(text.encode()).decode().rstrip("=")


def signed(
    world: World,
    spec: RouteSpec,
    side: Side,
    keyset: Keyset,
    secret: str = "",
    path: str = "",
) -> str:
    """A cursor signed like the server signs it, for `spec`'s list (at `path`, by default
    the one naming our resources) as `side`'s organization sees it."""
    app = world.client.app
    assert app is not None
    key = cursor_key(secret or app[SETTINGS].jwt_secret)
    binding = f"GET {path or world.paths(spec, world.ours)[0]} {side.account.org['id']}"
    return encode_cursor(key, binding, keyset)


async def status_of(world: World, spec: RouteSpec, cursor: str) -> tuple[int, str]:
    path = world.paths(spec, world.ours)[0]
    resp = await world.client.get(path, params={"cursor": cursor}, headers=world.ours.headers)
    return resp.status, await resp.text()


async def test_cursors_the_server_did_not_issue_are_400_on_every_list(world: World) -> None:
    wrong = []
    routes = list_routes(world)
    for index, spec in enumerate(routes):
        other = routes[(index + 1) % len(routes)]
        keysets = [Keyset(MOMENT, 1), Keyset(MOMENT, uuid.uuid4())]
        own = signed(world, spec, world.ours, keysets[0])
        bad = {
            "forged bigint": forged(f"{MOMENT.isoformat()}|i|1"),
            "forged overflow": forged(f"{MOMENT.isoformat()}|i|9223372036854775808"),
            "forged uuid": forged(f"{MOMENT.isoformat()}|u|{uuid.uuid4()}"),
            "forged with a made-up signature": own.split(".")[0] + ".AAAAAAAAAAAAAAAAAAAAAA",
            "truncated": own[:-3],
            "payload only": own.split(".")[0],
            "garbage": "garbage!",
            "oversized": "a" * 300,
            "padded": own + "==",
            "another key": signed(world, spec, world.ours, keysets[0], secret="not the key"),
            "another organization": signed(world, spec, world.rival, keysets[1]),
            "another list": signed(world, other, world.ours, keysets[1]),
        }
        elsewhere = world.paths(spec, world.colleague)[0]  # a colleague's wallet, say
        if elsewhere != world.paths(spec, world.ours)[0]:
            bad["another resource's list"] = signed(
                world, spec, world.ours, keysets[0], path=elsewhere
            )
        for label, cursor in bad.items():
            status, body = await status_of(world, spec, cursor)
            if status != 400 or '"invalid_cursor"' not in body:
                wrong.append(f"GET {spec.path} {label}: {status} {body[:160]}")
    assert wrong == []


async def test_a_server_cursor_for_the_list_itself_is_served(world: World) -> None:
    """The same signing, bound to the list it is used on, is accepted: the refusals above
    are about where a cursor came from, not about cursors as such."""
    wrong = []
    for spec in list_routes(world):
        ids: list[int | uuid.UUID] = [1, uuid.uuid4()]
        statuses = [
            (await status_of(world, spec, signed(world, spec, world.ours, Keyset(MOMENT, i))))[0]
            for i in ids
        ]
        if 200 not in statuses or any(s >= 500 for s in statuses):
            wrong.append(f"GET {spec.path}: {statuses}")
    assert wrong == []


async def test_genuine_cursors_page_through_every_list(world: World) -> None:
    """One row a page: each list's rows come back once each, in the order of one big page."""
    paged = 0
    for spec in list_routes(world):
        path = world.paths(spec, world.ours)[0]
        full = await world.client.get(path, params={"limit": "200"}, headers=world.ours.headers)
        assert full.status == 200, (spec.path, await full.text())
        everything = (await full.json())["data"]
        seen, cursor = [], None
        while True:
            params = {"limit": "1", **({"cursor": cursor} if cursor else {})}
            resp = await world.client.get(path, params=params, headers=world.ours.headers)
            assert resp.status == 200, (spec.path, await resp.text())
            page = await resp.json()
            seen += page["data"]
            cursor = page["next_cursor"]
            if cursor is None:
                break
        assert seen == everything, spec.path
        paged += len(everything) > 1
    assert paged >= 4
