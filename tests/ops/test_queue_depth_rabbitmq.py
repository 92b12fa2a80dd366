"""Queue depth on RabbitMQ: ready, delayed and dead-lettered messages of Dramatiq's queues."""

from __future__ import annotations

import secrets
import time
from collections.abc import Iterator

import pytest
from dramatiq import Message
from dramatiq.brokers.rabbitmq import RabbitmqBroker

from messaging.rabbit import measure_queue_depths, rabbitmq_broker


@pytest.fixture
def broker(amqp_url: str) -> Iterator[RabbitmqBroker]:
    broker = rabbitmq_broker(amqp_url, middleware=[])
    yield broker
    broker.close()


@pytest.fixture
def queue(broker: RabbitmqBroker) -> Iterator[str]:
    """A queue of the test's own, deleted afterwards with its .DQ and .XQ."""
    name = f"depth-{secrets.token_hex(4)}"
    yield name
    for suffix in ("", ".DQ", ".XQ"):
        broker.channel.queue_delete(name + suffix)


def _message(queue: str) -> Message[None]:
    return Message(queue_name=queue, actor_name="post_pending", args=(), kwargs={}, options={})


def test_counts_ready_delayed_and_dead_lettered_messages(
    broker: RabbitmqBroker, queue: str
) -> None:
    """Each of the queue, its delay queue and its dead letters reports what it holds."""
    # Given three messages, two delayed ones, and one rejected by a consumer
    for _ in range(4):
        broker.enqueue(_message(queue))
    for _ in range(2):
        broker.enqueue(_message(queue), delay=60_000)
    consumer = broker.consume(queue, prefetch=1, timeout=1_000)
    rejected = next(consumer)
    assert rejected is not None
    consumer.nack(rejected)
    consumer.close()

    # When the depths are measured (dead-lettering is asynchronous: allow it a moment)
    deadline = time.monotonic() + 5
    while (depths := measure_queue_depths(broker, [queue]))[f"{queue}.XQ"] == 0:
        assert time.monotonic() < deadline, depths
        time.sleep(0.05)

    # Then the ready, delayed and dead counts are exact
    assert depths == {queue: 3, f"{queue}.DQ": 2, f"{queue}.XQ": 1}
