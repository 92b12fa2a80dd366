"""`/ready` reports a stalled posting pipeline: `degraded` with the oldest PENDING age."""

from __future__ import annotations

import dataclasses
from collections.abc import Awaitable, Callable

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient
from sqlalchemy import create_engine, text

from gateway.app import create_app
from runtime.settings import Settings
from tests.support.databases import fresh_database
from tests.support.ledger import create_book

pytestmark = pytest.mark.asyncio

ClientMaker = Callable[[web.Application], Awaitable[TestClient]]


async def test_an_old_pending_transfer_makes_ready_degraded_but_still_200(
    api_settings: Settings, service_urls: tuple[str, str], aiohttp_client: ClientMaker
) -> None:
    """Given a transfer PENDING for 10 minutes, /ready says degraded, with its age, at 200."""
    with fresh_database(service_urls[0], prefix="vaultcraft_ready") as url:
        settings = dataclasses.replace(api_settings, database_url=url)
        client = await aiohttp_client(create_app(settings))
        healthy = await client.get("/ready")
        assert healthy.status == 200
        assert await healthy.json() == {
            "status": "ready",
            "checks": {"postgresql": "ok", "redis": "ok", "posting": "ok"},
            "oldest_pending_age_s": 0,
        }

        engine = create_engine(settings.sqlalchemy_url)
        book = create_book(engine, 1)
        with engine.begin() as conn:
            conn.execute(
                text(
                    "INSERT INTO transactions (organization_id, destination_organization_id,"
                    " idempotency_key, request_hash, kind, source_wallet_id,"
                    " destination_wallet_id, amount, currency, metadata, created_at)"
                    " VALUES (:o, :o, 'stuck', 'h', 'TRANSFER', :s, :d, 1, 'USD', '{}',"
                    " now() - interval '600 seconds')"
                ),
                {"o": book.organization_id, "s": book.system_wallet_id, "d": book.wallet_ids[0]},
            )
        engine.dispose()

        stalled = await client.get("/api/v1/ready")
        body = await stalled.json()
        assert stalled.status == 200
        assert body["status"] == "degraded"
        assert body["checks"]["posting"].startswith("oldest pending transfer waited")
        assert 599 <= body["oldest_pending_age_s"] < 700

        lenient = dataclasses.replace(settings, ready_max_pending_age_s=3600)
        other = await aiohttp_client(create_app(lenient))
        assert (await (await other.get("/ready")).json())["status"] == "ready"
