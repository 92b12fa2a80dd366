"""Queue depth is read from Dramatiq's own Redis keys, with real messages on a real broker."""

from __future__ import annotations

import secrets
from collections.abc import Iterator

import pytest
import redis
from dramatiq import Message
from dramatiq.brokers.redis import RedisBroker
from prometheus_client import REGISTRY

from workers.queue_depth import measure_queue_depths, update_queue_depth_metrics


@pytest.fixture
def namespace(redis_url: str) -> Iterator[str]:
    """A namespace of our own, so messages other tests leave on `posting` do not count."""
    name = f"vaultcraft-ops-{secrets.token_hex(4)}"
    yield name
    client = redis.Redis.from_url(redis_url)
    keys = list(client.scan_iter(match=f"{name}:*"))
    if keys:
        client.delete(*keys)


@pytest.fixture
def broker(redis_url: str, namespace: str) -> Iterator[RedisBroker]:
    broker = RedisBroker(url=redis_url, namespace=namespace)
    yield broker
    broker.close()


@pytest.fixture
def client(redis_url: str) -> redis.Redis:
    return redis.Redis.from_url(redis_url)


def _message(queue: str, actor: str) -> Message[None]:
    return Message(queue_name=queue, actor_name=actor, args=(), kwargs={}, options={})


def test_counts_waiting_and_delayed_messages_per_queue(
    broker: RedisBroker, client: redis.Redis, namespace: str
) -> None:
    """Each queue and its delay queue report exactly what was enqueued on them."""
    # Given three posting and two webhook messages, four delayed posting and one delayed job
    for _ in range(3):
        broker.enqueue(_message("posting", "post_pending"))
    for _ in range(2):
        broker.enqueue(_message("webhooks", "deliver_webhook"))
    for _ in range(4):
        broker.enqueue(_message("posting", "post_pending"), delay=60_000)
    broker.enqueue(_message("jobs", "run_reconciliation"), delay=60_000)

    # When the depths are measured
    depths = measure_queue_depths(client, namespace=namespace)

    # Then every queue shows its own count, and nothing was dead-lettered
    assert depths == {
        "posting": 3,
        "posting.DQ": 4,
        "posting.XQ": 0,
        "webhooks": 2,
        "webhooks.DQ": 0,
        "webhooks.XQ": 0,
        "jobs": 0,
        "jobs.DQ": 1,
        "jobs.XQ": 0,
    }


def test_prefetched_messages_count_until_acknowledged(
    broker: RedisBroker, client: redis.Redis, namespace: str
) -> None:
    """A message a worker holds is still backlog; acked it leaves, rejected it is dead-lettered."""
    # Given three posting messages, two of them fetched by a consumer
    for _ in range(3):
        broker.enqueue(_message("posting", "post_pending"))
    consumer = broker.consume("posting", prefetch=2, timeout=1_000)
    first, second = next(consumer), next(consumer)
    assert first is not None and second is not None
    assert measure_queue_depths(client, ["posting"], namespace=namespace)["posting"] == 3

    # When one is acknowledged and the other rejected
    consumer.ack(first)
    consumer.nack(second)
    depths = measure_queue_depths(client, ["posting"], namespace=namespace)
    consumer.close()

    # Then one message is left waiting and one is a dead letter
    assert depths == {"posting": 1, "posting.DQ": 0, "posting.XQ": 1}


def test_update_publishes_the_queue_depth_gauge(
    broker: RedisBroker, client: redis.Redis, namespace: str
) -> None:
    """`vaultcraft_queue_depth{queue}` carries the measured depth of every queue."""
    for _ in range(5):
        broker.enqueue(_message("webhooks", "deliver_webhook"))
    broker.enqueue(_message("posting", "post_pending"), delay=60_000)

    depths = update_queue_depth_metrics(measure_queue_depths(client, namespace=namespace))

    def gauge(queue: str) -> float | None:
        return REGISTRY.get_sample_value("vaultcraft_queue_depth", {"queue": queue})

    assert depths["webhooks"] == 5
    assert gauge("webhooks") == 5
    assert gauge("posting.DQ") == 1
    assert gauge("jobs") == 0
