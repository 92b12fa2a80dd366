"""Sending webhook delivery attempts to the `webhooks` queue, by actor name.

The relay sends first attempts without importing the delivery actor (and its HTTP
client); the actor sends its own retries the same way. A message names one attempt of
one delivery; the actor ignores it unless that attempt is the delivery's next one, so
sending the same attempt twice is harmless.
"""

from __future__ import annotations

from uuid import UUID

import dramatiq

from messaging.broker import WEBHOOKS_QUEUE

DELIVER_ACTOR = "deliver_webhook"


def send_attempt(
    broker: dramatiq.Broker, delivery_id: UUID | str, attempt: int, delay_ms: int | None = None
) -> None:
    """Enqueue attempt `attempt` of a delivery, after `delay_ms` if given."""
    message: dramatiq.Message[None] = dramatiq.Message(
        queue_name=WEBHOOKS_QUEUE,
        actor_name=DELIVER_ACTOR,
        args=(str(delivery_id), attempt),
        kwargs={},
        options={},
    )
    broker.enqueue(message, delay=delay_ms if delay_ms else None)
