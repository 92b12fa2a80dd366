"""Every process's metrics, scraped from the real processes after real traffic.

One stack (gateway, worker group, relay, scheduler) over a database of its own, so each
count can be compared with exactly what the test did.
"""

from __future__ import annotations

import json
import socket
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest
from sqlalchemy import create_engine, text

from tests.ops.scraping import Samples, scrape, scrape_url
from tests.support.stack import Stack
from tests.support.stack_api import Tenant, signup

TRANSFER_ROUTE = "/api/v1/transactions/transfer"


@pytest.fixture(scope="module")
def stack(
    own_database: str, redis_url: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Stack]:
    data_dir: Path = tmp_path_factory.mktemp("metrics-stack")
    env = {
        "VAULTCRAFT_RESCUE_INTERVAL_S": "1",  # the scheduler refreshes its gauges every second
        "VAULTCRAFT_RECONCILE_INTERVAL_S": "3600",
        "VAULTCRAFT_SETTLE_INTERVAL_S": "3600",
    }
    with Stack(own_database, redis_url, data_dir, scheduler=True, extra_env=env) as running:
        yield running


def eventually(
    read: Callable[[], Samples],
    want: Callable[[], dict[tuple[str, tuple[tuple[str, str], ...]], float]],
    timeout_s: float = 20,
) -> Samples:
    """Scrape until every wanted sample has its value (workers count just after committing).

    `want` is asked afresh each time, so it may read the database it is compared with.
    """
    deadline = time.monotonic() + timeout_s
    while True:
        samples, wanted = read(), want()
        got = {key: samples.get(key) for key in wanted}
        if got == wanted:
            return samples
        if time.monotonic() > deadline:
            raise AssertionError(f"metrics never matched: wanted {wanted}, got {got}")
        time.sleep(0.2)


def labels(**pairs: str) -> tuple[tuple[str, str], ...]:
    return tuple(sorted(pairs.items()))


def test_each_process_reports_what_the_traffic_did(stack: Stack) -> None:
    # Given an organization with two funded wallets
    with httpx.Client(base_url=stack.base_url, timeout=40) as http:
        t: Tenant = signup(http)
        alice, bob = t.wallet(), t.wallet()
        t.deposit(alice, "100.00")
        t.deposit(bob, "50.00")

        # When they move money, once more than there is
        for source, destination, amount in ((alice, bob, "30.00"), (bob, alice, "10.00")):
            moved = t.transfer(source, destination, amount)
            assert t.wait_final(moved.json()["id"])["status"] == "COMPLETED"
        refused = t.transfer(alice, bob, "1000.00")
        assert refused.status_code == 202
        final = t.wait_final(refused.json()["id"])
        assert (final["status"], final["failure_code"]) == ("FAILED", "insufficient_funds")

    # Then the gateway counts five accepted transfers, each answered 202
    gateway = scrape_url(stack.base_url + "/metrics")
    assert (
        gateway[
            (
                "vaultcraft_http_requests_total",
                labels(method="POST", route=TRANSFER_ROUTE, status="202"),
            )
        ]
        == 5
    )
    assert gateway[("vaultcraft_transfers_accepted_total", labels(kind="TRANSFER"))] == 5
    assert (
        gateway[
            (
                "vaultcraft_http_request_duration_seconds_count",
                labels(method="POST", route=TRANSFER_ROUTE),
            )
        ]
        == 5
    )

    # and the worker group posted four and failed one, in batches that add up to five
    worker = eventually(
        lambda: scrape(stack.metrics_port("worker")),
        lambda: {
            ("vaultcraft_transfers_finished_total", labels(status="COMPLETED", failure_code="")): 4,
            (
                "vaultcraft_transfers_finished_total",
                labels(status="FAILED", failure_code="insufficient_funds"),
            ): 1,
            ("vaultcraft_posting_batch_size_sum", ()): 5,
            ("vaultcraft_transfer_submit_to_final_seconds_count", ()): 5,
        },
    )
    batches = worker[("vaultcraft_posting_batch_size_count", ())]
    assert 1 <= batches <= 5
    assert worker[("vaultcraft_posting_batch_duration_seconds_count", ())] == batches
    handled = worker[
        (
            "vaultcraft_worker_messages_total",
            labels(queue="posting", actor="post_pending", outcome="ok"),
        )
    ]
    assert handled >= batches

    # and the relay measures the broker's queues
    relay = scrape(stack.metrics_port("relay"))
    for queue in ("posting", "posting.DQ", "posting.XQ", "webhooks", "jobs"):
        assert ("vaultcraft_queue_depth", labels(queue=queue)) in relay, queue


def test_the_scheduler_gauges_follow_the_database(stack: Stack, own_database: str) -> None:
    engine = create_engine(own_database)
    try:

        def backlog() -> int:
            with engine.connect() as conn:
                return int(
                    conn.execute(
                        text("SELECT count(*) FROM outbox WHERE relayed_at IS NULL")
                    ).scalar_one()
                )

        with httpx.Client(base_url=stack.base_url, timeout=40) as http:
            t = signup(http)
            alice, bob = t.wallet(), t.wallet()
            t.deposit(alice, "10.00")

            # Given no posting workers, two transfers wait in PENDING
            assert stack.stop("worker") == 0
            waiting = [t.transfer(alice, bob, "1.00").json()["id"] for _ in range(2)]

            # Then the scheduler's gauges show them, and the outbox as it stands
            read = lambda: scrape(stack.metrics_port("scheduler"))  # noqa: E731
            eventually(read, lambda: {("vaultcraft_pending_transfers", ()): 2})
            eventually(read, lambda: {("vaultcraft_outbox_backlog", ()): backlog()})
            assert read()[("vaultcraft_outbox_oldest_unsent_age_seconds", ())] >= 0

            # When the workers come back, the transfers post and the gauge drops to zero
            stack.start("worker")
            for transfer_id in waiting:
                assert t.wait_final(transfer_id)["status"] == "COMPLETED"
            eventually(read, lambda: {("vaultcraft_pending_transfers", ()): 0})
            eventually(read, lambda: {("vaultcraft_outbox_backlog", ()): backlog()})
    finally:
        engine.dispose()


def test_a_taken_metrics_port_is_logged_and_the_work_goes_on(
    own_database: str, redis_url: str, tmp_path: Path
) -> None:
    # Given the worker group's and the relay's metrics ports held by someone else
    stack = Stack(own_database, redis_url, tmp_path)
    with socket.socket() as worker_port, socket.socket() as relay_port:
        worker_port.bind(("127.0.0.1", stack.metrics_port("worker")))
        relay_port.bind(("127.0.0.1", stack.metrics_port("relay")))
        worker_port.listen()
        relay_port.listen()

        # When the stack runs anyway
        with stack, httpx.Client(base_url=stack.base_url, timeout=40) as http:
            t = signup(http)

            # Then transfers are still dispatched by the relay and posted by the workers
            t.deposit(t.wallet(), "1.00")
            assert stack.procs["relay"].poll() is None
            assert stack.procs["worker"].poll() is None

    # and each says, as an error, that it runs unscraped
    for group in ("worker", "relay"):
        errors = [
            json.loads(line) for line in stack.logs(group).splitlines() if '"level":"error"' in line
        ]
        assert any(f"Cannot serve the {group} metrics" in e["event"] for e in errors), errors
