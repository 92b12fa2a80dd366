"""The client's tests run against the real system: gateway, posting and webhook workers and
the relay as processes over the test database and Redis (webhooks to loopback allowed)."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.stack import Stack
from vaultcraft.client import VaultCraftClient

PASSWORD = "correct horse battery"
PROCESSES = ("gateway", "worker", "relay", "webhooks")
FAST_WEBHOOKS = {
    "VAULTCRAFT_ALLOW_PRIVATE_WEBHOOKS": "1",
    "VAULTCRAFT_WEBHOOK_BACKOFF_BASE_MS": "20",
    "VAULTCRAFT_WEBHOOK_BACKOFF_MAX_MS": "200",
    "VAULTCRAFT_WEBHOOK_TIMEOUT_MS": "3000",
}


@pytest.fixture(scope="package")
def stack(
    database_url: str, redis_url: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Stack]:
    data_dir: Path = tmp_path_factory.mktemp("client-stack")
    with Stack(
        database_url, redis_url, data_dir, processes=PROCESSES, extra_env=FAST_WEBHOOKS
    ) as running:
        yield running


def unique_email(label: str = "user") -> str:
    return f"{label}-{uuid.uuid4().hex[:12]}@example.com"


@pytest.fixture
def admin(stack: Stack) -> Iterator[VaultCraftClient]:
    """A client signed up as the admin of a fresh organization (INR)."""
    with VaultCraftClient(stack.base_url) as client:
        client.signup(unique_email("admin"), PASSWORD, "Ada Admin", f"Org {uuid.uuid4().hex[:8]}")
        yield client
