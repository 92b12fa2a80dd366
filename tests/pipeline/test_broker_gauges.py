"""The relay reports the depth of every Dramatiq queue of whichever broker runs."""

from __future__ import annotations

import dramatiq
import httpx
from prometheus_client.parser import text_string_to_metric_families

from messaging.broker import QUEUES
from tests.support.brokers import client_broker
from tests.support.ledger_checks import wait_until
from tests.support.stack import Stack


def queue_depths(stack: Stack) -> dict[str, float]:
    url = f"http://127.0.0.1:{stack.metrics_port('relay')}/metrics"
    try:
        text = httpx.get(url, timeout=5).text
    except httpx.HTTPError:
        return {}
    return {
        sample.labels["queue"]: sample.value
        for family in text_string_to_metric_families(text)
        if family.name == "vaultcraft_queue_depth"
        for sample in family.samples
    }


def test_the_relay_reports_each_queue_its_delay_queue_and_its_dead_letters(stack: Stack) -> None:
    expected = {name for q in QUEUES for name in (q, f"{q}.DQ", f"{q}.XQ")}
    wait_until(lambda: expected <= set(queue_depths(stack)), 20, "the queue depth gauges")
    assert all(depth >= 0 for depth in queue_depths(stack).values())


def test_messages_waiting_on_the_broker_show_in_the_posting_gauge(stack: Stack) -> None:
    """Measured on the broker the stack runs on: RabbitMQ's queue, or Redis's keys."""
    # Given an idle posting queue (a worker killed while holding a message would leave it
    # unacknowledged until the broker's heartbeat timeout), no posting worker, and three
    # kicks sent to the stack's broker
    wait_until(lambda: queue_depths(stack).get("posting") == 0, 30, "an idle posting queue")
    stack.kill("worker")
    broker = client_broker(stack.broker_url)
    try:
        for _ in range(3):
            broker.enqueue(
                dramatiq.Message(
                    queue_name="posting", actor_name="post_pending", args=(), kwargs={}, options={}
                )
            )
    finally:
        broker.close()
    # Then the relay's gauge counts them within a measuring interval or two
    try:
        wait_until(
            lambda: queue_depths(stack).get("posting", 0) >= 3, 20, "posting depth to show 3"
        )
    finally:
        stack.start("worker")
    # And once a worker takes them, the queue drains
    wait_until(lambda: queue_depths(stack).get("posting") == 0, 30, "the posting queue to drain")
