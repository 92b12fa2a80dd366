"""Relayed events published to RabbitMQ, beside the Redis stream (`VAULTCRAFT_EVENTS_AMQP_URL`).

Every event goes to the durable topic exchange `vaultcraft.events` with the event type as
routing key (bind a queue with `transfer.*` or `#`), as a persistent message whose body is
the public event JSON and whose `message_id` is the event id. The channel is in confirm
mode: `publish` returns only once RabbitMQ has taken every message of the batch, so the
relay marks events relayed only after that. A failure raises `pika.exceptions.AMQPError`
and closes the connection; the relay retries the same batch, in the same order, on a new
one. A message published before the failure may then arrive twice: consumers dedupe by
`message_id`, as they do for the stream.
"""

from __future__ import annotations

from collections.abc import Sequence

import pika
import pika.exceptions
from pika.adapters.blocking_connection import BlockingChannel

from ledger_core.persistence.events.outbox_relay import ClaimedEvent

EXCHANGE = "vaultcraft.events"
PERSISTENT = 2


class EventExchange:
    """A lazily opened confirm-mode channel to the `vaultcraft.events` exchange."""

    def __init__(self, url: str) -> None:
        self.parameters = pika.URLParameters(url)
        self._connection: pika.BlockingConnection | None = None
        self._channel: BlockingChannel | None = None

    def publish(self, events: Sequence[ClaimedEvent]) -> None:
        """Publish `events` in order; returns once RabbitMQ confirmed each of them.

        A connection left idle past its heartbeats may have been closed by the server
        since the last batch: then the batch is sent once more on a new connection.
        """
        reused = self._channel is not None
        try:
            self._publish(events)
        except pika.exceptions.AMQPError:
            self.close()
            if not reused:
                raise
            try:
                self._publish(events)
            except pika.exceptions.AMQPError:
                self.close()
                raise

    def _publish(self, events: Sequence[ClaimedEvent]) -> None:
        channel = self._open()
        for event in events:
            channel.basic_publish(
                exchange=EXCHANGE,
                routing_key=event.type,
                body=event.event_json.encode(),
                properties=pika.BasicProperties(
                    content_type="application/json",
                    delivery_mode=PERSISTENT,
                    message_id=event.event_id,
                    type=event.type,
                ),
            )

    def close(self) -> None:
        connection, self._connection, self._channel = self._connection, None, None
        if connection is not None and connection.is_open:
            try:
                connection.close()
            except pika.exceptions.AMQPError:
                pass

    def _open(self) -> BlockingChannel:
        if self._channel is None or not self._channel.is_open:
            self.close()
            self._connection = pika.BlockingConnection(self.parameters)
            channel = self._connection.channel()
            channel.confirm_delivery()
            channel.exchange_declare(EXCHANGE, exchange_type="topic", durable=True)
            self._channel = channel
        return self._channel
