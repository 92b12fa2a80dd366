"""`/ready` checks the broker that `BROKER_URL` names, and settings refuse a broker URL they cannot use."""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from urllib.parse import urlsplit, urlunsplit

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient

from gateway.app import create_app
from runtime.ports import free_port
from runtime.settings import Settings
from tests.support.api import API, expect_problem

Client = Callable[[web.Application], Awaitable[TestClient]]


@pytest.mark.asyncio
async def test_ready_checks_a_reachable_rabbitmq(
    aiohttp_client: Client, api_settings: Settings, amqp_url: str
) -> None:
    """With `BROKER_URL=amqp://…` the broker is one of the readiness checks."""
    settings = dataclasses.replace(api_settings, broker_url=amqp_url)
    client = await aiohttp_client(create_app(settings))
    resp = await client.get(f"{API}/ready")
    assert resp.status == 200, await resp.text()
    checks = (await resp.json())["checks"]
    assert {k: checks[k] for k in ("postgresql", "redis", "broker")} == {
        "postgresql": "ok",
        "redis": "ok",
        "broker": "ok",
    }


@pytest.mark.asyncio
async def test_ready_is_503_when_the_configured_broker_is_down(
    aiohttp_client: Client, api_settings: Settings
) -> None:
    """A RabbitMQ that does not answer makes the gateway unready, naming the broker."""
    dead = f"amqp://guest:guest@127.0.0.1:{free_port()}/"
    client = await aiohttp_client(create_app(dataclasses.replace(api_settings, broker_url=dead)))
    problem = await expect_problem(await client.get(f"{API}/ready"), 503, "service_unavailable")
    assert [e["field"] for e in problem["errors"]] == ["broker"]
    assert str(dead) not in problem["detail"]


@asynccontextmanager
async def counting_proxy(url: str) -> AsyncIterator[tuple[str, list[int]]]:
    """A TCP relay in front of the broker of `url`: its URL, and the connections it took."""
    target = urlsplit(url)
    accepted: list[int] = []

    async def pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while data := await reader.read(65536):
                writer.write(data)
                await writer.drain()
        except ConnectionError:
            pass
        finally:
            writer.close()

    async def relay(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        accepted.append(1)
        up_reader, up_writer = await asyncio.open_connection(target.hostname, target.port)
        await asyncio.gather(pipe(reader, up_writer), pipe(up_reader, writer))

    server = await asyncio.start_server(relay, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    netloc = target.netloc.rsplit("@", 1)[0] + f"@127.0.0.1:{port}"
    async with server:
        yield urlunsplit(target._replace(netloc=netloc)), accepted


@pytest.mark.asyncio
async def test_ready_reuses_the_broker_answer_for_a_few_seconds(
    aiohttp_client: Client, api_settings: Settings, amqp_url: str
) -> None:
    """Twenty probes in a burst open one AMQP connection, not twenty."""
    async with counting_proxy(amqp_url) as (proxied, accepted):
        settings = dataclasses.replace(api_settings, broker_url=proxied)
        client = await aiohttp_client(create_app(settings))
        answers = await asyncio.gather(*(client.get(f"{API}/ready") for _ in range(10)))
        answers += [await client.get(f"{API}/ready") for _ in range(10)]
        assert [a.status for a in answers] == [200] * 20
        assert {(await a.json())["checks"]["broker"] for a in answers} == {"ok"}
        assert len(accepted) == 1


def test_settings_refuse_a_broker_url_of_another_kind() -> None:
    """Only Redis and AMQP URLs select a broker; the events URL must be AMQP."""
    with pytest.raises(SystemExit, match="BROKER_URL"):
        Settings.from_env({"BROKER_URL": "http://127.0.0.1:5672/", "VAULTCRAFT_JWT_SECRET": "x"})
    with pytest.raises(SystemExit, match="VAULTCRAFT_EVENTS_AMQP_URL"):
        Settings.from_env(
            {"VAULTCRAFT_EVENTS_AMQP_URL": "redis://127.0.0.1/", "VAULTCRAFT_JWT_SECRET": "x"}
        )
    settings = Settings.from_env(
        {
            "BROKER_URL": "amqp://h/",
            "VAULTCRAFT_EVENTS_AMQP_URL": "amqps://h/",
            "VAULTCRAFT_JWT_SECRET": "x",
        }
    )
    assert (settings.broker_url, settings.events_amqp_url) == ("amqp://h/", "amqps://h/")
