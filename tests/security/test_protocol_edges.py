"""The edges of the HTTP surface: malformed HTTP, the Server header, and JSON that a
lenient parser would read one way and a client meant another.

- Requests that are not valid HTTP (sent over raw sockets to the gateway as it is
  served) get problem JSON that quotes nothing of what was sent.
- No answer names the stack in `Server`.
- A body repeating a key is `422 duplicate_key` on every route that takes a body; a write
  that takes no body refuses fields; a charset other than UTF-8 is `415`; a webhook URL
  with a control character is `422`. None of them writes anything.
"""

from __future__ import annotations

import json
import socket
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
import pytest_asyncio
from aiohttp.test_utils import TestClient
from sqlalchemy import Engine

from runtime.settings import Settings
from tests.security.test_hostile_input import counts
from tests.security.world import World, build_world
from tests.support.api import API, expect_problem
from tests.support.live_server import LiveGateway

MARKER = "ECHO-ME-7f3a"


@pytest.fixture
def live(api_settings: Settings) -> Iterator[tuple[str, int]]:
    with LiveGateway(api_settings) as base_url:
        host, port = base_url.removeprefix("http://").split(":")
        yield host, int(port)


def exchange(address: tuple[str, int], raw: bytes) -> tuple[int, dict[str, str], bytes]:
    """Send `raw` as is; the status, headers and body of the answer."""
    with socket.create_connection(address, timeout=10) as conn:
        conn.sendall(raw)
        answer = b""
        while chunk := conn.recv(65536):
            answer += chunk
    head, _, body = answer.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    headers = {
        name.strip().lower(): value.strip()
        for name, _, value in (line.partition(":") for line in lines[1:])
    }
    return int(lines[0].split()[1]), headers, body


MALFORMED = {
    "garbage request line": f"GARBAGE{MARKER} /\x01 FOO\r\n\r\n".encode(),
    "oversized header": (
        f"GET /health HTTP/1.1\r\nHost: x\r\nX-Big: {'a' * 20_000}{MARKER}\r\n\r\n".encode()
    ),
    "control character in a header": (
        f"GET /health HTTP/1.1\r\nHost: x\r\nX-Evil: a\x01{MARKER}\r\n\r\n".encode()
    ),
    "Content-Length with Transfer-Encoding": (
        b"POST /api/v1/auth/login HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n"
        b"Transfer-Encoding: chunked\r\nX-Marker: " + MARKER.encode() + b"\r\n\r\n0\r\n\r\n"
    ),
    "bad chunk size": (
        b"POST /api/v1/auth/login HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n"
        b"Content-Type: application/json\r\n\r\n" + MARKER.encode() + b"\r\n\r\n"
    ),
}


@pytest.mark.parametrize("label", list(MALFORMED))
def test_malformed_http_gets_a_problem_that_echoes_nothing(
    live: tuple[str, int], label: str
) -> None:
    status, headers, body = exchange(live, MALFORMED[label])
    assert 400 <= status < 500, (status, body[:300])
    assert headers["content-type"] == "application/problem+json", headers
    problem = json.loads(body)
    assert problem["status"] == status and problem["code"]
    assert MARKER.encode() not in body
    assert headers["server"] == "vaultcraft"


@pytest.mark.asyncio
async def test_no_answer_names_the_stack(client: TestClient, live: tuple[str, int]) -> None:
    for path in ("/health", f"{API}/wallets", "/nowhere"):
        resp = await client.get(path)
        assert resp.headers["Server"] == "vaultcraft", path
    status, headers, _ = exchange(
        live, b"GET /health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    )
    assert (status, headers["server"]) == (200, "vaultcraft")


@pytest_asyncio.fixture
async def world(client: TestClient, engine: Engine) -> World:
    return await build_world(client, engine)


def with_repeated_first_key(body: dict[str, Any], spacing: str = "") -> str:
    """`body` as JSON text with its first key given twice, first with a changed value."""
    key, value = next(iter(body.items()))
    decoy = "9.99" if isinstance(value, str) and value[:1].isdigit() else value
    return f"{{{json.dumps(key)}{spacing}:{json.dumps(decoy)},{json.dumps(body)[1:]}"


async def post_raw(
    world: World, method: str, path: str, raw: str, content_type: str = "application/json"
) -> Any:
    headers = {**world.ours.headers, "Content-Type": content_type}
    headers["Idempotency-Key"] = str(uuid.uuid4())
    return await world.client.request(method, path, data=raw.encode(), headers=headers)


@pytest.mark.asyncio
async def test_a_repeated_key_is_refused_on_every_body(world: World, engine: Engine) -> None:
    before, wrong, tried = counts(engine), [], 0
    for spec in world.routes:
        sample = world.body(spec, world.ours)
        if not sample:
            continue
        path = world.paths(spec, world.ours)[0]
        for spacing in ("", " "):
            tried += 1
            resp = await post_raw(
                world, spec.method, path, with_repeated_first_key(sample, spacing)
            )
            if resp.status != 422 or (await resp.json())["code"] != "duplicate_key":
                wrong.append(f"{spec.method} {spec.path}: {resp.status} {await resp.text()}")
    assert tried >= 20 and wrong == []
    assert counts(engine) == before


@pytest.mark.asyncio
async def test_a_transfer_with_two_amounts_posts_neither(world: World, engine: Engine) -> None:
    source, destination = world.ours.ids["wallet_id"], world.ours.ids["destination_wallet_id"]
    before = counts(engine)
    for raw in (
        f'{{"source_wallet_id":"{source}","destination_wallet_id":"{destination}",'
        '"amount":"0.01","currency":"USD","amount":"99.00"}',
        f'{{"transfers":[{{"source_wallet_id":"{source}","destination_wallet_id":"{destination}",'
        f'"amount":"0.01","amount" : "99.00","currency":"USD","idempotency_key":"{uuid.uuid4()}"}}]}}',
    ):
        path = (
            f"{API}/transactions/transfer"
            if "transfers" not in raw
            else f"{API}/transactions/batch"
        )
        problem = await expect_problem(
            await post_raw(world, "POST", path, raw), 422, "duplicate_key"
        )
        assert problem["errors"] == [{"field": "amount", "message": "given more than once"}]
    assert counts(engine) == before


@pytest.mark.asyncio
async def test_text_that_looks_like_a_key_is_not_a_repeat(world: World) -> None:
    """The quick count of keys is only a first look: a `":` inside a value is just text."""
    raw = json.dumps({"type": "PRIMARY", "currency": "USD", "name": 'a "type": b'})
    resp = await post_raw(world, "POST", f"{API}/wallets", raw)
    assert resp.status == 201, await resp.text()


@pytest.mark.asyncio
async def test_writes_without_a_body_refuse_fields(world: World, engine: Engine) -> None:
    writes = [
        (spec, world.paths(spec, world.ours)[0])  # resolving a path may insert its row
        for spec in world.routes
        if spec.body is None and spec.method != "GET"
    ]
    before, wrong = counts(engine), []
    for spec, path in writes:
        resp = await post_raw(world, spec.method, path, '{"x": 1}')
        if resp.status != 422 or (await resp.json())["errors"][0]["field"] != "x":
            wrong.append(f"{spec.method} {spec.path}: {resp.status} {await resp.text()}")
    assert len(writes) >= 4 and wrong == []
    assert counts(engine) == before
    for raw in ("{}", ""):
        resp = await post_raw(world, "POST", f"{API}/settlements/run", raw)
        assert resp.status == 202, await resp.text()


@pytest.mark.asyncio
async def test_only_utf8_json_is_read(world: World, engine: Engine) -> None:
    raw = json.dumps({"type": "PRIMARY", "currency": "USD"})
    before = counts(engine)
    for charset in ("bogus", "latin-1", "utf-16", "utf-8x"):
        resp = await post_raw(
            world, "POST", f"{API}/wallets", raw, f"application/json; charset={charset}"
        )
        await expect_problem(resp, 415, "unsupported_media_type")
    assert counts(engine) == before
    for content_type in ("application/json; charset=UTF-8", "application/json; charset=utf-8"):
        resp = await post_raw(world, "POST", f"{API}/wallets", raw, content_type)
        assert resp.status == 201, await resp.text()


@pytest.mark.asyncio
async def test_webhook_urls_with_control_characters_are_refused(
    world: World, engine: Engine
) -> None:
    before = counts(engine)
    for tail in ("\r\nX-Injected: 1", "\n", "\t", "\x7f", "\x85", "\x00", " x"):
        body = {"url": f"https://hooks.example.com/a{tail}", "events": ["transfer.completed"]}
        resp = await world.client.post(f"{API}/webhooks", json=body, headers=world.ours.headers)
        assert resp.status == 422, (repr(tail), await resp.text())
    assert counts(engine) == before
