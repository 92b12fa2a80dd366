"""Relayed events on RabbitMQ's `vaultcraft.events` exchange: order, format, confirms, outages."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterator
from uuid import UUID

import pika
import pytest
import redis
from pika.adapters.blocking_connection import BlockingChannel
from sqlalchemy import Engine, create_engine

from messaging.broker import setup_broker
from runtime.ports import free_port
from runtime.settings import Settings
from tests.events.conftest import Env, RelayThread, insert_events, stream_ids, unrelayed
from tests.support.ledger import create_book
from workers.event_exchange import EXCHANGE, EventExchange
from workers.outbox_relay import OutboxRelay


@pytest.fixture
def channel(amqp_url: str) -> Iterator[BlockingChannel]:
    connection = pika.BlockingConnection(pika.URLParameters(amqp_url))
    try:
        yield connection.channel()
    finally:
        connection.close()


def bind_queue(channel: BlockingChannel, pattern: str = "#") -> str:
    """A private queue that receives what the exchange routes by `pattern`."""
    channel.exchange_declare(EXCHANGE, exchange_type="topic", durable=True)
    name = f"test-events-{uuid.uuid4().hex[:8]}"
    channel.queue_declare(name, exclusive=True, auto_delete=True)
    channel.queue_bind(name, EXCHANGE, routing_key=pattern)
    return name


def received(
    channel: BlockingChannel, queue: str, wanted: set[UUID]
) -> list[tuple[str, pika.BasicProperties, dict[str, object]]]:
    """(routing key, properties, body) of the queued messages carrying `wanted` events."""
    found = []
    while True:
        method, properties, body = channel.basic_get(queue, auto_ack=True)
        if method is None:
            return found
        if UUID(properties.message_id) in wanted:
            found.append((method.routing_key, properties, json.loads(body)))


@pytest.fixture
def relay_for(engine: Engine, redis_url: str, events_env: Env) -> Iterator[type[OutboxRelay]]:
    relays: list[OutboxRelay] = []
    clients: list[redis.Redis] = []

    class ExchangeRelay(OutboxRelay):
        def __init__(self, exchange: EventExchange, batch_size: int = 500) -> None:
            settings = Settings.from_env(
                {**events_env, "VAULTCRAFT_OUTBOX_BATCH_SIZE": str(batch_size)}
            )
            own = create_engine(engine.url, pool_size=2)
            client = redis.Redis.from_url(redis_url)
            relays.append(self)
            clients.append(client)
            super().__init__(settings, own, client, setup_broker(settings), exchange)

    yield ExchangeRelay
    for relay in relays:
        relay.close()
        relay.engine.dispose()
    for client in clients:
        client.close()


@pytest.mark.usefixtures("settled_outbox")
def test_every_relayed_event_is_a_persistent_message_routed_by_its_type(
    engine: Engine, amqp_url: str, channel: BlockingChannel, relay_for: type[OutboxRelay]
) -> None:
    """Each event arrives once, in outbox order, as its public JSON with its id as message_id."""
    queue = bind_queue(channel, "wallet.*")
    book = create_book(engine, 1)
    ids = insert_events(engine, book, 40)
    exchange = EventExchange(amqp_url)

    relay_for(exchange).drain()
    exchange.close()

    assert unrelayed(engine, ids) == 0
    messages = received(channel, queue, set(ids))
    assert [UUID(p.message_id) for _key, p, _body in messages] == ids
    key, props, body = messages[0]
    assert key == "wallet.status_changed" and props.delivery_mode == 2
    assert props.content_type == "application/json"
    assert body["id"] == str(ids[0]) and body["organization_id"] == str(book.organization_id)
    assert set(body) == {"id", "type", "created_at", "organization_id", "data"}


@pytest.mark.usefixtures("settled_outbox")
def test_while_rabbitmq_is_unreachable_nothing_is_marked_relayed_or_reordered(
    engine: Engine,
    amqp_url: str,
    channel: BlockingChannel,
    relay_for: type[OutboxRelay],
    stream: redis.Redis,
) -> None:
    """A batch that RabbitMQ did not confirm stays unrelayed and is published first later."""
    queue = bind_queue(channel)
    book = create_book(engine, 1)
    first = insert_events(engine, book, 5)
    exchange = EventExchange(amqp_url)
    reachable = exchange.parameters
    exchange.parameters = pika.URLParameters(f"amqp://guest:guest@127.0.0.1:{free_port()}/")
    relay = relay_for(exchange, 5)

    with pytest.raises(pika.exceptions.AMQPError):
        relay.relay_batch()
    assert unrelayed(engine, first) == 5
    later = insert_events(engine, book, 5)
    with pytest.raises(pika.exceptions.AMQPError):
        relay.relay_batch()  # still the first batch, never the later one
    assert stream_ids(stream, set(later)) == []  # the stream saw the first batch only
    assert len(stream_ids(stream, set(first))) == 10  # twice

    exchange.parameters = reachable
    relay.drain()
    exchange.close()

    assert unrelayed(engine, first + later) == 0
    messages = received(channel, queue, set(first + later))
    assert [UUID(p.message_id) for _key, p, _body in messages] == first + later


def test_the_relay_process_publishes_to_the_exchange_it_is_configured_with(
    engine: Engine,
    amqp_url: str,
    channel: BlockingChannel,
    events_env: Env,
    no_deliveries_left_behind: None,
) -> None:
    """`VAULTCRAFT_EVENTS_AMQP_URL` alone turns the exchange on in the relay's loop."""
    queue = bind_queue(channel)
    book = create_book(engine, 1)
    settings = Settings.from_env({**events_env, "VAULTCRAFT_EVENTS_AMQP_URL": amqp_url})
    with RelayThread(settings):
        ids = insert_events(engine, book, 10)
        deadline = time.monotonic() + 20
        while unrelayed(engine, ids):
            assert time.monotonic() < deadline, "the relay did not relay the events"
            time.sleep(0.05)
    messages = received(channel, queue, set(ids))
    assert [UUID(p.message_id) for _key, p, _body in messages] == ids
