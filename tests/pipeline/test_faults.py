"""The transfer pipeline under concurrency and faults: nothing lost, nothing doubled.

Every test ends by checking promises 1-6 from the database with plain SQL.
"""

from __future__ import annotations

import random
import signal
import threading
import time
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import dramatiq
import httpx
import pytest
from sqlalchemy import Engine, text

from tests.support.brokers import client_broker, lose_queued_messages
from tests.support.ledger_checks import (
    assert_ledger_sound,
    cents,
    pending_count,
    wait_until,
)
from tests.support.rabbit import can_manage, close_connections
from tests.support.stack import Stack
from tests.support.stack_api import Tenant, signup

pytestmark = pytest.mark.slow

LOADED_P99_S = 1.0
"""Submit-to-posted p99 allowed while 16 clients load the shared test machine (the 100 ms
target of spec/performance.md is measured by the benchmark on a quiet one)."""


def submit_many(
    t: Tenant, moves: list[tuple[str, str, str]], clients: int = 16
) -> list[dict[str, Any]]:
    """Submit transfers from `clients` concurrent connections; every one must be accepted
    (a connection that fails under a request is retried under the same key)."""

    def one(move: tuple[str, str, str]) -> dict[str, Any]:
        resp = t.transfer_retrying(*move)
        assert resp.status_code in (200, 202), resp.text
        return dict(resp.json())

    with ThreadPoolExecutor(clients) as pool:
        return list(pool.map(one, moves))


def test_many_clients_on_one_hot_wallet_never_overdraw_it(
    http: httpx.Client, engine: Engine
) -> None:
    t = signup(http)
    hot = t.wallet()
    sinks = [t.wallet() for _ in range(4)]
    t.deposit(hot, "100.00")
    rng = random.Random(7)
    moves = [(hot, rng.choice(sinks), f"{rng.randint(1, 300)}.00") for _ in range(300)]
    accepted = submit_many(t, moves, clients=32)
    finals = [t.wait_final(a["id"]) for a in accepted]
    completed = sum(cents(f["amount"]) for f in finals if f["status"] == "COMPLETED")
    failed = [f for f in finals if f["status"] == "FAILED"]
    assert completed <= 100_00 and all(f["failure_code"] == "insufficient_funds" for f in failed)
    assert cents(t.balance(hot)) == 100_00 - completed
    assert sum(cents(t.balance(s)) for s in sinks) == completed
    assert_ledger_sound(engine)


def test_duplicate_and_concurrent_messages_post_once(
    stack: Stack, http: httpx.Client, engine: Engine
) -> None:
    t = signup(http)
    a, b = t.wallet(), t.wallet()
    t.deposit(a, "1000.00")
    stack.kill("worker")
    accepted = submit_many(t, [(a, b, "1.00")] * 200)
    broker = client_broker(stack.broker_url)
    for _ in range(50):
        broker.enqueue(
            dramatiq.Message(
                queue_name="posting", actor_name="post_pending", args=(), kwargs={}, options={}
            )
        )
    broker.close()
    stack.start("worker")
    finals = [t.wait_final(x["id"]) for x in accepted]
    assert {f["status"] for f in finals} == {"COMPLETED"}
    with engine.connect() as conn:
        entries, events = conn.execute(
            text(
                "SELECT (SELECT count(*) FROM ledger_entries e JOIN transactions t ON t.id = e.transaction_id"
                "        WHERE t.organization_id = :o),"
                "       (SELECT count(*) FROM outbox WHERE organization_id = :o AND type LIKE 'transfer.%')"
            ),
            {"o": t.organization_id},
        ).one()
    assert (entries, events) == (2 * 201, 201)
    assert t.balance(b) == "200.00"
    assert_ledger_sound(engine)


def load_while(
    http: httpx.Client,
    engine: Engine,
    fault: Callable[[], None],
    *,
    wallets: int,
    transfers: int,
    seed: int,
    every_s: tuple[float, float],
) -> None:
    """Move money among funded wallets while `fault` strikes every few tenths of a second;
    then every transfer is final, no money appeared or vanished, and the ledger is sound."""
    t = signup(http)
    funded = [t.wallet() for _ in range(wallets)]
    for w in funded:
        t.deposit(w, "500.00")
    rng = random.Random(seed)
    stop = threading.Event()

    def chaos() -> None:
        while not stop.wait(rng.uniform(*every_s)):
            fault()

    thread = threading.Thread(target=chaos)
    thread.start()
    try:
        moves = [(*rng.sample(funded, 2), f"{rng.randint(1, 90)}.00") for _ in range(transfers)]
        accepted = submit_many(t, moves)
        time.sleep(1.5)
    finally:
        stop.set()
        thread.join()
    wait_until(
        lambda: pending_count(engine, t.organization_id) == 0, 60, "every transfer to be final"
    )
    assert {t.wait_final(a["id"])["status"] for a in accepted} <= {"COMPLETED", "FAILED"}
    assert sum(cents(t.balance(w)) for w in funded) == wallets * 500_00
    assert_ledger_sound(engine)


def test_a_worker_killed_mid_batch_loses_and_doubles_nothing(
    stack: Stack, http: httpx.Client, engine: Engine
) -> None:
    def kill_worker() -> None:
        stack.kill("worker", signal.SIGKILL)
        stack.start("worker")

    load_while(http, engine, kill_worker, wallets=10, transfers=1500, seed=11, every_s=(0.2, 0.6))


def test_losing_every_queued_message_leaves_nothing_stuck_past_the_rescue_window(
    stack: Stack, http: httpx.Client, engine: Engine
) -> None:
    """Redis is flushed, RabbitMQ's queues purged: what a broker restarting without
    persistence leaves. The PENDING transfers are found again from PostgreSQL."""
    t = signup(http)
    a, b = t.wallet(), t.wallet()
    t.deposit(a, "100.00")
    stack.kill("worker")
    accepted = submit_many(t, [(a, b, "1.00")] * 50)
    time.sleep(0.5)
    lose_queued_messages(stack.broker_url)
    stack.start("worker")
    wait_until(
        lambda: pending_count(engine, t.organization_id) == 0,
        2 + 15,
        "the rescue to post everything",
    )
    assert {t.wait_final(x["id"])["status"] for x in accepted} == {"COMPLETED"}
    assert_ledger_sound(engine)


def cut_broker_connections(stack: Stack) -> None:
    """RabbitMQ closes every connection of the stack's vhost, as a broker restart would;
    on a server the test cannot manage, the worker group is killed and started instead."""
    if can_manage(stack.broker_url):
        close_connections(stack.broker_url)
    else:
        stack.restart("worker")


def test_broker_connections_cut_under_load_lose_and_double_nothing(
    stack: Stack, http: httpx.Client, engine: Engine
) -> None:
    """RabbitMQ only: workers, relay and gateway lose their broker connections mid-load.

    Unacknowledged messages go back to their queue and are redelivered, reconnecting
    consumers and publishers carry on, and whatever a cut still loses is rescued from
    PostgreSQL. (On Redis the test above covers the broker's restart.)
    """
    if not stack.broker_url.startswith("amqp"):
        pytest.skip("cuts RabbitMQ connections; Redis is shared, its restart is the flush test")
    load_while(
        http,
        engine,
        lambda: cut_broker_connections(stack),
        wallets=6,
        transfers=600,
        seed=5,
        every_s=(0.3, 0.8),
    )


def test_cancel_racing_the_posting_ends_in_exactly_one_outcome(
    http: httpx.Client, engine: Engine
) -> None:
    t = signup(http)
    a, b = t.wallet(), t.wallet()
    t.deposit(a, "1000.00")
    accepted = submit_many(t, [(a, b, "1.00")] * 150)

    def cancel(tx: dict[str, Any]) -> tuple[str, int]:
        return tx["id"], t.post(f"/api/v1/transactions/{tx['id']}/cancel").status_code

    with ThreadPoolExecutor(16) as pool:
        answers = dict(pool.map(cancel, accepted))
    assert set(answers.values()) <= {200, 409}
    for tx_id, status in answers.items():
        final = t.wait_final(tx_id)
        assert (final["status"] == "CANCELLED") == (status == 200), (final, status)
    with engine.connect() as conn:
        doubled = conn.execute(
            text(
                "SELECT count(*) FROM transactions t WHERE t.status = 'CANCELLED' AND t.organization_id = :o"
                " AND EXISTS (SELECT 1 FROM ledger_entries e WHERE e.transaction_id = t.id)"
            ),
            {"o": t.organization_id},
        ).scalar_one()
    assert doubled == 0
    completed = sum(1 for s in answers.values() if s == 409)
    assert t.balance(b) == f"{completed}.00"
    assert_ledger_sound(engine)


def test_concurrent_duplicate_idempotency_keys_create_one_transfer(
    http: httpx.Client, engine: Engine
) -> None:
    t = signup(http)
    a, b = t.wallet(), t.wallet()
    t.deposit(a, "10.00")
    key = str(uuid.uuid4())
    with ThreadPoolExecutor(12) as pool:
        answers = list(pool.map(lambda _: t.transfer(a, b, "1.00", key=key), range(24)))
    assert sorted({r.status_code for r in answers}) in ([200, 202], [202])
    assert len({r.json()["id"] for r in answers}) == 1
    assert sum(r.status_code == 202 for r in answers) == 1
    with engine.connect() as conn:
        assert (
            conn.execute(
                text(
                    "SELECT count(*) FROM transactions WHERE organization_id = :o AND idempotency_key = :k"
                ),
                {"o": t.organization_id, "k": key},
            ).scalar_one()
            == 1
        )


def test_a_poisoned_transfer_in_a_loaded_run_of_several_tenants_fails_alone(
    http: httpx.Client, engine: Engine, poisoned_amount: str
) -> None:
    """Three tenants submit concurrently; the database refuses one transfer in the middle.

    It alone ends FAILED (posting_error); every other transfer posts within the latency
    bound of this machine and the invariants hold.
    """
    tenants = [signup(http) for _ in range(3)]
    books = []
    for t in tenants:
        a, b = t.wallet(), t.wallet()
        t.deposit(a, "1000.00")
        books.append((t, a, b))
    rng = random.Random(14)
    jobs = [(t, (a, b, f"{rng.randint(1, 9)}.00")) for t, a, b in books for _ in range(120)]
    rng.shuffle(jobs)
    poisoned_at = len(jobs) // 2
    t, (a, b, _) = jobs[poisoned_at]
    jobs[poisoned_at] = (t, (a, b, poisoned_amount))

    def submit(job: tuple[Tenant, tuple[str, str, str]]) -> tuple[Tenant, str]:
        tenant, move = job
        resp = tenant.transfer_retrying(*move)
        assert resp.status_code in (200, 202), resp.text
        return tenant, str(resp.json()["id"])

    with ThreadPoolExecutor(16) as pool:
        accepted = list(pool.map(submit, jobs))
    finals = [tenant.wait_final(tx) for tenant, tx in accepted]

    poisoned = finals.pop(poisoned_at)
    assert (poisoned["status"], poisoned["failure_code"]) == ("FAILED", "posting_error")
    assert {f["status"] for f in finals} == {"COMPLETED"}
    with engine.connect() as conn:
        p99 = conn.execute(
            text(
                "SELECT percentile_cont(0.99) WITHIN GROUP"
                " (ORDER BY extract(epoch FROM posted_at - created_at))"
                " FROM transactions WHERE id = ANY(CAST(:ids AS uuid[]))"
            ),
            {"ids": [f["id"] for f in finals]},
        ).scalar_one()
    assert p99 < LOADED_P99_S, p99
    assert_ledger_sound(engine)
