"""Injection strings and oversized values in every string field, query and path parameter.

Each is answered with a 4xx problem (or, for free text, accepted and stored as the text it
is), never a 5xx; a refused request writes nothing. Oversized values are always refused.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from types import UnionType
from typing import Annotated, Any, Union, get_args, get_origin
from urllib.parse import quote

import pytest
import pytest_asyncio
from aiohttp.test_utils import TestClient
from sqlalchemy import Engine, text

from gateway.registry import RouteSpec
from tests.security.world import World, build_world
from tests.support.ledger_sql import cancel_transfer

pytestmark = [pytest.mark.asyncio, pytest.mark.slow]

HOSTILE = [
    "' OR '1'='1",
    "'; DROP TABLE wallets; --",
    '" OR 1=1 --',
    "1); SELECT pg_sleep(10); --",
    "$$; DELETE FROM users; $$",
    "<script>alert(1)</script>",
    "nul\x00byte",
    "../../../../etc/passwd",
    "{{7*7}}${7*7}",
    "\U0001f600" * 3 + "\u202e",
    "\ud800 lone surrogate",
]
OVERSIZED = "x" * 100_000
COUNTED = ("organizations", "users", "wallets", "transactions", "webhooks", "counterparties")


def counts(engine: Engine) -> dict[str, int]:
    with engine.connect() as conn:
        return {t: conn.execute(text(f"SELECT count(*) FROM {t}")).scalar_one() for t in COUNTED}


def string_paths(value: Any, at: tuple[Any, ...] = ()) -> Iterator[tuple[Any, ...]]:
    """Where in a JSON body the strings are (keys of objects, indexes of lists)."""
    if isinstance(value, dict):
        for key, item in value.items():
            yield from string_paths(item, (*at, key))
    elif isinstance(value, list):
        for n, item in enumerate(value):
            yield from string_paths(item, (*at, n))
    elif isinstance(value, str):
        yield at


def replaced(value: Any, at: tuple[Any, ...], new: str) -> Any:
    if not at:
        return new
    if isinstance(value, dict):
        return {k: replaced(v, at[1:], new) if k == at[0] else v for k, v in value.items()}
    return [replaced(v, at[1:], new) if n == at[0] else v for n, v in enumerate(value)]


@pytest_asyncio.fixture
async def world(client: TestClient, engine: Engine) -> Iterator[World]:
    built = await build_world(client, engine)
    yield built
    with engine.connect() as conn:  # accepted free-text transfers must not stay PENDING
        pending = conn.execute(
            text("SELECT id FROM transactions WHERE status = 'PENDING' AND organization_id = :o"),
            {"o": built.ours.account.org["id"]},
        ).scalars()
        for tx in list(pending):
            cancel_transfer(engine, tx)


async def send(world: World, spec: RouteSpec, path: str, body: Any, **params: str) -> int:
    resp = await world.client.request(
        spec.method,
        path,
        json=body,
        params=params or None,
        headers={**world.ours.headers, "Idempotency-Key": str(uuid.uuid4())},
    )
    await resp.read()
    return resp.status


async def test_hostile_strings_in_every_body_field(world: World, engine: Engine) -> None:
    wrong, tried = [], 0
    for spec in world.routes:
        sample = world.body(spec, world.ours)
        if sample is None:
            continue
        path = world.paths(spec, world.ours)[0]
        for where in string_paths(sample):
            for value in [*HOSTILE, OVERSIZED]:
                before = counts(engine)
                body = replaced(world.body(spec, world.ours), where, value)
                status = await send(world, spec, path, body)
                tried += 1
                label = f"{spec.method} {spec.path} {'.'.join(map(str, where))}={value[:30]!r}"
                if status >= 500 or (value is OVERSIZED and status < 400):
                    wrong.append(f"{label}: {status}")
                elif status >= 400 and counts(engine) != before:
                    wrong.append(f"{label}: refused with {status} but wrote rows")
    assert tried > 100 and wrong == []


def free_text_params(spec: RouteSpec) -> set[str]:
    """Query parameters that filter by any text (an audit action, a resource id): a hostile
    string there is just text that matches nothing. Cursors are not: only the server's own
    are accepted."""
    if spec.query is None:
        return set()
    return {
        name
        for name, info in spec.query.model_fields.items()
        if name != "cursor" and _base_types(info.annotation) == {str}
    }


def _base_types(annotation: Any) -> set[Any]:
    if get_origin(annotation) is Annotated:
        return _base_types(get_args(annotation)[0])
    if get_origin(annotation) in {Union, UnionType}:
        return set().union(*(_base_types(a) for a in get_args(annotation))) - {type(None)}
    return {annotation}


async def test_hostile_strings_in_every_query_and_path_parameter(world: World) -> None:
    """Refused (4xx), or for a free-text filter matched as the text it is: found nothing."""
    wrong = []
    oversized = OVERSIZED[:5000]
    for spec in world.routes:
        names = list(spec.query.model_fields) if spec.query is not None else []
        free_text = free_text_params(spec)
        body = world.body(spec, world.ours)
        for value in [*HOSTILE, oversized]:
            if spec.method == "GET":
                path = world.paths(spec, world.ours)[0]
                for name in names:
                    query = f"?{name}={quote(value, safe='', errors='surrogatepass')}"
                    resp = await world.client.get(path + query, headers=world.ours.headers)
                    found = await resp.text()
                    label = f"GET {spec.path}?{name}={value[:30]!r}: {resp.status}"
                    if name in free_text and value is not oversized and resp.status == 200:
                        if (await resp.json())["data"] != []:
                            wrong.append(f"{label} found {found[:200]}")
                    elif not 400 <= resp.status < 500:
                        wrong.append(label)
            for param in spec.path_params:
                path = spec.full_path.replace(
                    f"{{{param}}}", quote(value, safe="", errors="surrogatepass")
                )
                for other in spec.path_params:
                    path = path.replace(f"{{{other}}}", world.id_of(world.ours, other))
                status = await send(world, spec, path, body)
                if not 400 <= status < 500:
                    wrong.append(f"{spec.method} {spec.path} {param}={value[:30]!r}: {status}")
    assert wrong == []


async def test_oversized_bodies_and_headers_are_refused(world: World, engine: Engine) -> None:
    before = counts(engine)
    for spec in world.routes:
        if spec.body is None:
            continue
        path = world.paths(spec, world.ours)[0]
        resp = await world.client.request(
            spec.method,
            path,
            data=b'{"pad": "' + b"x" * (1024 * 1024 + 10) + b'"}',
            headers={**world.ours.headers, "Content-Type": "application/json"},
        )
        assert resp.status == 413, (spec.path, resp.status)
        resp = await world.client.request(
            spec.method,
            path,
            json=world.body(spec, world.ours),
            headers={**world.ours.headers, "Idempotency-Key": "k" * 20_000},
        )
        assert 400 <= resp.status < 500, (spec.path, resp.status)
    assert counts(engine) == before
