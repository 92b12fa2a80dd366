"""Fixtures for the events tests: settings with fast retries, a relay, a webhook worker.

Tests that deliver to the loopback receiver need private targets allowed, so the gateway
(`hooks_client`), the relay and the worker are all started from `events_env`, where it is
on. Tests that run a relay or a worker leave no delivery PENDING and no webhook message
queued behind them.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any
from uuid import UUID, uuid4

import pytest
import pytest_asyncio
import redis
from aiohttp import web
from aiohttp.test_utils import TestClient
from sqlalchemy import Engine, create_engine, text

from gateway.app import create_app
from ledger_core.persistence.events.outbox import WALLET_STATUS_CHANGED, outbox_insert
from messaging.broker import setup_broker
from runtime.settings import Settings
from tests.support.fixtures import JWT_SECRET, api_settings, client  # noqa: F401
from tests.support.ledger import Book, create_book
from workers.event_stream import EVENT_STREAM
from workers.outbox_relay import OutboxRelay

ROOT = Path(__file__).resolve().parents[2]

Env = dict[str, str]


@pytest.fixture
def events_env(database_url: str, redis_url: str, tmp_path: Path) -> Env:
    """The environment of every process in these tests: fast retries, private targets on."""
    return {
        "DATABASE_URL": database_url,
        "REDIS_URL": redis_url,
        "VAULTCRAFT_DATA_DIR": str(tmp_path),
        "VAULTCRAFT_JWT_SECRET": JWT_SECRET,
        "VAULTCRAFT_BCRYPT_ROUNDS": "4",
        "VAULTCRAFT_ALLOW_PRIVATE_WEBHOOKS": "1",
        "VAULTCRAFT_WEBHOOK_TIMEOUT_MS": "3000",
        "VAULTCRAFT_WEBHOOK_MAX_ATTEMPTS": "8",
        "VAULTCRAFT_WEBHOOK_BACKOFF_BASE_MS": "20",
        "VAULTCRAFT_WEBHOOK_BACKOFF_MAX_MS": "200",
        "VAULTCRAFT_WEBHOOK_RESCUE_AFTER_S": "2",
        "VAULTCRAFT_OUTBOX_LEASE_S": "2",
        "VAULTCRAFT_LOG_FORMAT": "json",
    }


@pytest.fixture
def events_settings(events_env: Env) -> Settings:
    return Settings.from_env(events_env)


@pytest_asyncio.fixture
async def hooks_client(
    aiohttp_client: Callable[[web.Application], Awaitable[TestClient]],
    events_settings: Settings,
) -> AsyncIterator[TestClient]:
    """A gateway that accepts webhooks on loopback (VAULTCRAFT_ALLOW_PRIVATE_WEBHOOKS=1)."""
    yield await aiohttp_client(create_app(events_settings))


class RelayThread:
    """The relay process's outbox loop, run in a thread of the test process."""

    def __init__(self, settings: Settings) -> None:
        from workers.outbox_relay import run_outbox_relay

        self.stop = threading.Event()
        self.thread = threading.Thread(
            target=run_outbox_relay(settings), args=(self.stop,), daemon=True
        )

    def __enter__(self) -> RelayThread:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        self.thread.join(timeout=15)


@pytest.fixture
def relay(events_settings: Settings, no_deliveries_left_behind: None) -> Iterator[RelayThread]:
    with RelayThread(events_settings) as running:
        yield running


class Process:
    """A child process of ours with its output in a log file; stopped at teardown."""

    def __init__(self, argv: list[str], env: Env, log_path: Path) -> None:
        self.log_path = log_path
        with log_path.open("ab") as log:
            self.proc = subprocess.Popen(
                argv,
                cwd=ROOT,
                env={**os.environ, **env},
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )

    def kill(self) -> None:
        """SIGKILL the whole process group: no clean-up of any kind."""
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait(timeout=10)

    def stop(self) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.kill()

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")[-5000:]


StartWorker = Callable[..., Process]


@pytest.fixture
def start_webhook_worker(
    events_env: Env, tmp_path: Path, no_deliveries_left_behind: None
) -> Iterator[StartWorker]:
    """Start `dramatiq workers.bootstrap --queues webhooks` as a child, with env overrides."""
    started: list[Process] = []

    def start(**overrides: str) -> Process:
        env = {**events_env, **overrides, "dramatiq_worker_timeout": "10"}
        argv = [sys.executable, "-m", "dramatiq", "workers.bootstrap", "--processes", "1"]
        argv += ["--threads", "4", "--queues", "webhooks"]
        process = Process(argv, env, tmp_path / f"webhook-worker-{len(started)}.log")
        started.append(process)
        return process

    yield start
    for process in started:
        process.stop()


@pytest.fixture
def no_deliveries_left_behind(engine: Engine, redis_url: str) -> Iterator[None]:
    """After each test: no webhook message queued, no delivery left to retry."""
    yield
    with redis.Redis.from_url(redis_url) as conn:
        for key in conn.scan_iter("dramatiq:webhooks*"):
            conn.delete(key)
    with engine.begin() as conn:
        conn.execute(
            text(
                "UPDATE webhook_deliveries SET status = 'FAILED', next_attempt_at = NULL"
                " WHERE status = 'PENDING'"
            )
        )


@pytest.fixture(scope="session")
def readme_verify() -> Callable[..., bool]:
    """`verify_vaultcraft_signature` exactly as the README shows it to receivers."""
    readme = (ROOT / "README.md").read_text()
    blocks = re.findall(r"```python\n(.*?)```", readme, flags=re.S)
    [source] = [b for b in blocks if "def verify_vaultcraft_signature" in b]
    namespace: dict[str, Any] = {}
    exec(compile(source, "README.md", "exec"), namespace)  # noqa: S102 - our own README
    verify: Callable[..., bool] = namespace["verify_vaultcraft_signature"]
    return verify


@pytest.fixture
def stream(redis_url: str) -> Iterator[redis.Redis]:
    """A client of the Redis that holds the event stream."""
    with redis.Redis.from_url(redis_url) as events:
        yield events


def insert_events(engine: Engine, book: Book, count: int) -> list[UUID]:
    ids = [uuid4() for _ in range(count)]
    with engine.begin() as conn:
        for n, event_id in enumerate(ids):
            data = {"id": str(book.wallet_ids[0]) if book.wallet_ids else "w", "n": n}
            conn.execute(
                outbox_insert(WALLET_STATUS_CHANGED, book.organization_id, data, event_id=event_id)
            )
    return ids


def stream_ids(redis_client: redis.Redis, wanted: set[UUID]) -> list[UUID]:
    """Event ids of the stream's entries that are among `wanted`, in stream order."""
    found = []
    for _entry_id, fields in redis_client.xrange(EVENT_STREAM):
        event_id = UUID(fields[b"event_id"].decode())
        if event_id in wanted:
            found.append(event_id)
    return found


def unrelayed(engine: Engine, ids: list[UUID]) -> int:
    with engine.connect() as conn:
        return int(
            conn.scalar(
                text(
                    "SELECT count(*) FROM outbox WHERE event_id = ANY(:ids)"
                    " AND id > (SELECT position FROM outbox_relay_cursor)"
                ),
                {"ids": ids},
            )
            or 0
        )


@pytest.fixture
def make_relay(
    events_settings: Settings, engine: Engine, stream: redis.Redis, no_deliveries_left_behind: None
) -> Iterator[type[OutboxRelay]]:
    """Build relays in the test process (each with its own engine, like separate processes)."""
    relays: list[OutboxRelay] = []

    class TestRelay(OutboxRelay):
        def __init__(self, settings: Settings = events_settings) -> None:
            own = create_engine(engine.url, pool_size=2)
            relays.append(self)
            super().__init__(settings, own, stream, setup_broker(settings))

    yield TestRelay
    for relay in relays:
        relay.close()
        relay.engine.dispose()


SETTLE_S = 30.0


@pytest.fixture
def settled_outbox(engine: Engine, make_relay: type[OutboxRelay]) -> None:
    """No gap before the test's own events: one drain then publishes them all.

    An earlier test in this database may have rolled back an outbox insert, leaving an id
    that no event will ever take. The relay passes such a gap only on a later wake-up,
    after reading the horizon, and only once an event after it is visible: a marker event
    is relayed here until it is through, whatever the earlier tests left behind."""
    marker = insert_events(engine, create_book(engine, 0), 1)
    relay = make_relay()
    deadline = time.monotonic() + SETTLE_S
    while relay.relay_batch() or unrelayed(engine, marker):
        assert time.monotonic() < deadline, "the relay never passed what earlier tests left"
        time.sleep(0.01)
