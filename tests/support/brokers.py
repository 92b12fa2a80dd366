"""What fault tests do to the broker, on Redis or on RabbitMQ alike."""

from __future__ import annotations

import dramatiq
import redis
from dramatiq.brokers.redis import RedisBroker

from messaging.broker import QUEUES
from messaging.rabbit import rabbitmq_broker
from runtime.settings import is_amqp
from workers.queue_depth import NAMESPACE


def client_broker(url: str) -> dramatiq.Broker:
    """A broker of the test's own on the stack's broker, to send messages from outside."""
    if is_amqp(url):
        return rabbitmq_broker(url, middleware=[])
    return RedisBroker(url=url)  # type: ignore[no-untyped-call]


def start_empty(url: str) -> None:
    """Forget what earlier stacks left on a Redis broker's Dramatiq keys, before a new stack.

    A worker killed while it held messages leaves them unacknowledged until Dramatiq's
    heartbeat timeout (60 s) and a later maintenance pass give them back, so they would
    count in the next stack's queue gauges for a minute or more. RabbitMQ gives a dead
    consumer's messages back at once, and each test session has a vhost of its own.
    """
    if is_amqp(url):
        return
    with redis.Redis.from_url(url) as conn:
        for key in conn.scan_iter(f"{NAMESPACE}:*", count=1000):
            conn.delete(key)


def lose_queued_messages(url: str) -> None:
    """Drop every queued message, as a broker restarting without persistence would."""
    if not is_amqp(url):
        redis.Redis.from_url(url).flushdb()
        return
    broker = rabbitmq_broker(url, middleware=[])
    try:
        for queue in QUEUES:
            broker.declare_queue(queue)
            broker.flush(queue)
    finally:
        broker.close()
