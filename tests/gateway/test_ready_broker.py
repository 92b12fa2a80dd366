"""`/ready` checks the broker that `BROKER_URL` names, and settings refuse a broker URL they cannot use."""

from __future__ import annotations

import dataclasses
from collections.abc import Awaitable, Callable

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
