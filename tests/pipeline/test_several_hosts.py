"""Two hosts on one PostgreSQL and one broker: any gateway answers for any transfer.

Each `Stack` stands for a host: its own data dir, gateway, worker group and relay, all
sharing the database, Redis and the broker (and the JWT secret and the audit signing key,
as every host must: docs/scaling.md).
Transfers are submitted on one gateway and long-polled on the other while the second
host's worker group is killed with SIGKILL mid-load; every transfer ends posted once.
"""

from __future__ import annotations

import random
import signal
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from sqlalchemy import Engine

from runtime.audit_keys import encode_private
from tests.support.ledger_checks import (
    assert_ledger_sound,
    cents,
    double_postings,
    pending_count,
    unfinished,
    wait_until,
)
from tests.support.stack import Stack
from tests.support.stack_api import Tenant, signup

pytestmark = pytest.mark.slow

HOST_PROCESSES = ("gateway", "worker", "relay")


@pytest.fixture
def hosts(
    database_url: str, redis_url: str, broker_url: str, tmp_path: Path
) -> Iterator[tuple[Stack, Stack]]:
    env = {
        "VAULTCRAFT_PENDING_RESCUE_AFTER_S": "2",
        "VAULTCRAFT_AUDIT_SIGNING_KEY": encode_private(Ed25519PrivateKey.generate()),
    }
    with (
        Stack(
            database_url,
            redis_url,
            tmp_path / "a",
            processes=HOST_PROCESSES,
            extra_env=env,
            broker_url=broker_url,
        ) as a,
        Stack(
            database_url,
            redis_url,
            tmp_path / "b",
            processes=HOST_PROCESSES,
            extra_env=env,
            broker_url=broker_url,
        ) as b,
    ):
        yield a, b


def test_two_hosts_post_every_transfer_once_when_one_worker_group_is_killed(
    hosts: tuple[Stack, Stack], engine: Engine
) -> None:
    a, b = hosts
    with (
        httpx.Client(base_url=a.base_url, timeout=40) as on_a,
        httpx.Client(base_url=b.base_url, timeout=40) as on_b,
    ):
        t = signup(on_a)
        seen_from_b = Tenant(on_b, t.token, t.organization_id, t.user_id, t.system_wallet_id)
        wallets = [t.wallet() for _ in range(8)]
        for w in wallets:
            t.deposit(w, "200.00")
        rng = random.Random(21)
        moves = [(*rng.sample(wallets, 2), f"{rng.randint(1, 30)}.00") for _ in range(800)]
        finals: list[dict[str, Any]] = []

        def submit_then_wait_on_b(move: tuple[str, str, str]) -> None:
            resp = t.transfer(*move)
            assert resp.status_code == 202, resp.text
            finals.append(seen_from_b.wait_final(resp.json()["id"], timeout_s=60))

        killer = threading.Timer(1.5, b.kill, args=("worker", signal.SIGKILL))
        killer.start()
        started = time.monotonic()
        with ThreadPoolExecutor(16) as pool:
            list(pool.map(submit_then_wait_on_b, moves))
        killer.join()
        assert not b.running("worker") and time.monotonic() - started > 1.5

        wait_until(
            lambda: pending_count(engine, t.organization_id) == 0, 60, "every transfer final"
        )
        assert len(finals) == len(moves)
        assert {f["status"] for f in finals} <= {"COMPLETED", "FAILED"}
        with engine.connect() as conn:
            assert unfinished(conn, [f["id"] for f in finals]) == []
            assert double_postings(conn) == []
        assert sum(cents(seen_from_b.balance(w)) for w in wallets) == 8 * 200_00
        assert_ledger_sound(engine)
