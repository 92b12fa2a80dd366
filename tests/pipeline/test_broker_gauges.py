"""The relay reports the depth of every Dramatiq queue of whichever broker runs."""

from __future__ import annotations

import json
import time

import dramatiq
import httpx
import redis
from prometheus_client.parser import text_string_to_metric_families

from messaging.broker import QUEUES
from runtime.settings import is_amqp
from tests.support.brokers import client_broker
from tests.support.ledger_checks import wait_until
from tests.support.stack import Stack
from workers.queue_depth import NAMESPACE


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


def _record(seen: list[dict[str, float]], depths: dict[str, float]) -> dict[str, float]:
    seen.append({q: d for q, d in depths.items() if q.startswith("posting")})
    return depths


def _broker_holds(stack: Stack) -> str:
    """What the broker itself holds for the posting queue, for a failure's message."""
    if is_amqp(stack.broker_url):
        return "RabbitMQ"
    with redis.Redis.from_url(stack.broker_url) as conn:
        held = conn.hgetall(f"{NAMESPACE}:posting.msgs")
        acks = {
            key.decode(): conn.smembers(key) for key in conn.scan_iter(f"{NAMESPACE}:__acks__*")
        }
        queued = conn.lrange(f"{NAMESPACE}:posting", 0, -1)
        beats = conn.zrange(f"{NAMESPACE}:__heartbeats__", 0, -1, withscores=True)
    now_ms = time.time() * 1000
    ages = sorted(
        (int(now_ms - json.loads(body)["message_timestamp"]) for body in held.values()),
        reverse=True,
    )
    return (
        f"{len(held)} posting messages held (ages in ms {ages[:10]}), {len(queued)} queued, "
        f"ack sets {{ {', '.join(f'{k}: {len(v)}' for k, v in acks.items())} }}, "
        f"heartbeats (ms ago) {[int(now_ms - score) for _, score in beats]}"
    )


def test_the_relay_reports_each_queue_its_delay_queue_and_its_dead_letters(stack: Stack) -> None:
    expected = {name for q in QUEUES for name in (q, f"{q}.DQ", f"{q}.XQ")}
    wait_until(lambda: expected <= set(queue_depths(stack)), 20, "the queue depth gauges")
    assert all(depth >= 0 for depth in queue_depths(stack).values())


def test_messages_waiting_on_the_broker_show_in_the_posting_gauge(stack: Stack) -> None:
    """Measured on the broker the stack runs on: RabbitMQ's queue, or Redis's keys."""
    # Given an idle posting queue (the stack started on an empty broker), no posting
    # worker, and three kicks sent to the stack's broker
    seen: list[dict[str, float]] = []
    try:
        wait_until(lambda: _record(seen, queue_depths(stack)).get("posting") == 0, 30, "idle")
    except AssertionError:
        raise AssertionError(
            f"the posting queue was not idle within 30 s: {_broker_holds(stack)}; "
            f"the relay's last readings: {seen[-5:]}"
        ) from None
    # Stopped, not killed: a killed worker holding a kick (the dispatcher's, sent after the
    # gauge's last reading) would leave it unacknowledged until Dramatiq's heartbeat timeout
    # (60 s) gives it back, and the gauge rightly counts it until then.
    stack.stop("worker")
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
    try:
        wait_until(lambda: queue_depths(stack).get("posting") == 0, 30, "the posting queue")
    except AssertionError:
        raise AssertionError(
            f"the posting queue did not drain within 30 s: {_broker_holds(stack)}"
        ) from None
