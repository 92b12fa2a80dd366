"""What fault tests do to the broker, on Redis or on RabbitMQ alike."""

from __future__ import annotations

import dramatiq
import redis
from dramatiq.brokers.redis import RedisBroker

from messaging.broker import QUEUES
from messaging.rabbit import rabbitmq_broker
from runtime.settings import is_amqp


def client_broker(url: str) -> dramatiq.Broker:
    """A broker of the test's own on the stack's broker, to send messages from outside."""
    if is_amqp(url):
        return rabbitmq_broker(url, middleware=[])
    return RedisBroker(url=url)  # type: ignore[no-untyped-call]


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
