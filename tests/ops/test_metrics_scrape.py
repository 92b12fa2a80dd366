"""Every process's metrics, scraped from the real processes after real traffic.

One stack (gateway, worker group, relay, scheduler) over a database of its own, so each
count can be compared with exactly what the test did.
"""

from __future__ import annotations

import functools
import json
import re
import socket
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest
from sqlalchemy import create_engine, text

from tests.ops.scraping import Samples, scrape, scrape_url
from tests.support.ledger_checks import wait_until
from tests.support.stack import Stack
from tests.support.stack_api import Tenant, signup

TRANSFER_ROUTE = "/api/v1/transactions/transfer"
TOKEN = "ops-metrics-" + "m" * 32
"""The stack runs with VAULTCRAFT_METRICS_TOKEN set, as a deployment scraped from afar does."""


@pytest.fixture(scope="module")
def stack(
    own_database: str, redis_url: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Stack]:
    data_dir: Path = tmp_path_factory.mktemp("metrics-stack")
    env = {
        "VAULTCRAFT_RESCUE_INTERVAL_S": "1",  # the scheduler refreshes its gauges every second
        "VAULTCRAFT_RECONCILE_INTERVAL_S": "3600",
        "VAULTCRAFT_SETTLE_INTERVAL_S": "3600",
        "VAULTCRAFT_METRICS_TOKEN": TOKEN,
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
    gateway = scrape_url(stack.base_url + "/metrics", TOKEN)
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
        lambda: scrape(stack.metrics_port("worker"), TOKEN),
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

    # and the messages that started them were handled (a posting session's message ends
    # two empty claims after its last batch, so it may be counted a moment later)
    handled_ok = (
        "vaultcraft_worker_messages_total",
        labels(queue="posting", actor="post_pending", outcome="ok"),
    )

    def handled() -> float:
        return scrape(stack.metrics_port("worker"), TOKEN).get(handled_ok, 0.0)

    wait_until(lambda: handled() >= 1, timeout_s=20, what="the post_pending message's count")
    assert handled() >= 1, "one message may post many batches, but some message posted them"

    # and the relay measures the broker's queues
    relay = scrape(stack.metrics_port("relay"), TOKEN)
    for queue in ("posting", "posting.DQ", "posting.XQ", "webhooks", "jobs"):
        assert ("vaultcraft_queue_depth", labels(queue=queue)) in relay, queue


def test_the_scheduler_gauges_follow_the_database(stack: Stack, own_database: str) -> None:
    engine = create_engine(own_database)
    try:

        def backlog() -> int:
            with engine.connect() as conn:
                return int(
                    conn.execute(
                        text(
                            "SELECT count(*) FROM outbox"
                            " WHERE id > (SELECT position FROM outbox_relay_cursor)"
                        )
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
            read = lambda: scrape(stack.metrics_port("scheduler"), TOKEN)  # noqa: E731
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


FORBIDDEN_LABELS = {"organization", "organization_id", "org", "tenant", "user", "user_id"}
FORBIDDEN_LABELS |= {"email", "reason", "currency", "wallet", "wallet_id", "account"}
IDENTIFYING_VALUE = re.compile(r"@|[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")


def test_no_series_names_a_tenant_a_user_or_money(stack: Stack) -> None:
    """After logins that fail both ways and a settlement between two organizations, no
    series of any process has a label that identifies or enumerates, nor sums money."""
    with httpx.Client(base_url=stack.base_url, timeout=40) as http:
        payer, payee = signup(http), signup(http)
        known = payer.get("/api/v1/auth/me").json()["email"]
        for email, password in (("nobody@example.com", "x" * 12), (known, "y" * 12)):
            resp = http.post("/api/v1/auth/login", json={"email": email, "password": password})
            assert resp.status_code == 401
        linked = payee.post("/api/v1/counterparties", {"organization_id": payer.organization_id})
        assert linked.status_code == 201, linked.text
        source, destination = payer.wallet(), payee.wallet()
        payer.deposit(source, "5.00")
        paid = payer.transfer(source, destination, "2.00")
        assert payer.wait_final(paid.json()["id"])["status"] == "COMPLETED"
        settled = payer.post("/api/v1/settlements/run")
        assert settled.status_code == 202 and settled.json()["settlements"], settled.text

        for url in (stack.base_url + "/metrics", stack.base_url + "/api/v1/metrics"):
            assert http.get(url).status_code == 401  # the stack runs with a token
    scrapes = {"gateway": scrape_url(stack.base_url + "/metrics", TOKEN)}
    for group in ("worker", "relay", "scheduler"):
        scrapes[group] = scrape(stack.metrics_port(group), TOKEN)
    assert scrapes["gateway"][("vaultcraft_login_failures_total", ())] >= 2
    assert scrapes["gateway"][("vaultcraft_settlements_total", ())] >= 1
    wrong = [
        f"{process}: {name}{dict(pairs)}"
        for process, samples in scrapes.items()
        for name, pairs in samples
        if "amount" in name
        or FORBIDDEN_LABELS & {label for label, _ in pairs}
        or any(IDENTIFYING_VALUE.search(value) for _, value in pairs)
    ]
    assert wrong == []


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

            # and each says, as an error, that it runs unscraped (the worker group's metrics
            # fork starts once its workers are up, so under load it may say so after the
            # deposit has posted)
            for group in ("worker", "relay"):
                wait_until(
                    functools.partial(_logged_metrics_port_taken, stack, group),
                    30,
                    f"the {group} to log that its metrics port is taken",
                )


def _logged_metrics_port_taken(stack: Stack, group: str) -> bool:
    """Whether `group` said, as an error, that its metrics port could not be served."""
    lines = stack.logs(group).splitlines()
    errors = [json.loads(line) for line in lines if '"level":"error"' in line]
    return any(f"Cannot serve the {group} metrics" in str(e["event"]) for e in errors)
