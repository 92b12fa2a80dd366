"""Sending webhook delivery attempts to the `webhooks` queue, by actor name.

The relay sends first attempts without importing the delivery actor (and its HTTP
client); the actor sends its own retries the same way. A message names one attempt of
one delivery; the actor ignores it unless that attempt is the delivery's next one, so
sending the same attempt twice is harmless.
"""

from __future__ import annotations

from collections.abc import Sequence
from uuid import UUID

import dramatiq

from messaging.broker import WEBHOOKS_QUEUE
from messaging.doorbell import DoorbellRedisBroker

DELIVER_ACTOR = "deliver_webhook"


def send_attempt(
    broker: dramatiq.Broker, delivery_id: UUID | str, attempt: int, delay_ms: int | None = None
) -> None:
    """Enqueue attempt `attempt` of a delivery, after `delay_ms` if given."""
    broker.enqueue(_message(delivery_id, attempt), delay=delay_ms if delay_ms else None)


def send_attempts(
    broker: dramatiq.Broker, delivery_ids: Sequence[UUID | str], attempt: int
) -> None:
    """Enqueue attempt `attempt` of each delivery now: in one round trip on Redis."""
    messages = [_message(delivery_id, attempt) for delivery_id in delivery_ids]
    if isinstance(broker, DoorbellRedisBroker):
        broker.enqueue_many(messages)
        return
    for message in messages:
        broker.enqueue(message)


def _message(delivery_id: UUID | str, attempt: int) -> dramatiq.Message[None]:
    return dramatiq.Message(
        queue_name=WEBHOOKS_QUEUE,
        actor_name=DELIVER_ACTOR,
        args=(str(delivery_id), attempt),
        kwargs={},
        options={},
    )
