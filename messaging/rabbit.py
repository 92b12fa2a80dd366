"""Dramatiq on RabbitMQ: the broker, its queue depths and a reachability check.

Chosen with `BROKER_URL=amqp://…`. Dramatiq declares every queue durable, with a delay
queue `<queue>.DQ` for retries and a dead-letter queue `<queue>.XQ` (where a message goes
once its retries are spent; it shows in the management UI). Messages are persistent, and
with `confirm_delivery` every enqueue waits until RabbitMQ has taken the message, so a
send that returned is not lost by a broker crash. Heartbeats are pika's: the server's
proposal (60 s) unless the URL sets `?heartbeat=`; consumers answer them while they wait
for messages, and a publisher connection closed while idle is reopened by the next send.

Consumers are pushed messages by RabbitMQ, so the Redis doorbell has no equivalent here.
"""

from __future__ import annotations

from collections.abc import Iterable

import pika
from dramatiq.brokers.rabbitmq import RabbitmqBroker
from dramatiq.common import dq_name, xq_name
from dramatiq.middleware import Middleware

CHECK_TIMEOUT_S = 2.0


def rabbitmq_broker(url: str, middleware: list[Middleware]) -> RabbitmqBroker:
    return RabbitmqBroker(url=url, confirm_delivery=True, middleware=middleware)


def measure_queue_depths(broker: RabbitmqBroker, queues: Iterable[str]) -> dict[str, int]:
    """Return `{queue: ready messages}` for each queue, its `q.DQ` and its `q.XQ`.

    RabbitMQ counts the messages ready for delivery: the ones a worker has prefetched
    and not acknowledged are not in it (they show as "unacked" in the management UI).
    Declaring is idempotent, with the arguments Dramatiq itself uses.
    """
    depths: dict[str, int] = {}
    for queue in queues:
        ready, delayed, dead = broker.get_queue_message_counts(queue)
        depths.update({queue: ready, dq_name(queue): delayed, xq_name(queue): dead})
    return depths


def check_reachable(url: str) -> None:
    """Open and close one AMQP connection; raises `pika.exceptions.AMQPError` if it fails."""
    params = pika.URLParameters(url)
    params.socket_timeout = CHECK_TIMEOUT_S
    params.blocked_connection_timeout = CHECK_TIMEOUT_S
    params.connection_attempts = 1
    pika.BlockingConnection(params).close()
