"""The broker's doorbell on a real Redis: an idle consumer sleeps on it without polling and
wakes as soon as a message is enqueued."""

from __future__ import annotations

import secrets
import threading
import time
from collections.abc import Iterator

import pytest
import redis
from dramatiq import Message

from messaging.doorbell import DoorbellRedisBroker


@pytest.fixture
def namespace(redis_url: str) -> Iterator[str]:
    name = f"vaultcraft-bell-{secrets.token_hex(4)}"
    yield name
    client = redis.Redis.from_url(redis_url)
    keys = list(client.scan_iter(match=f"{name}:*"))
    if keys:
        client.delete(*keys)


def _broker(url: str, namespace: str) -> DoorbellRedisBroker:
    broker = DoorbellRedisBroker(url=url, namespace=namespace)  # type: ignore[no-untyped-call]
    broker.declare_queue("posting")
    return broker


def _message() -> Message[None]:
    return Message(queue_name="posting", actor_name="post_pending", args=(), kwargs={}, options={})


def _count_fetches(broker: DoorbellRedisBroker) -> list[int]:
    """Count the consumer's fetches (Dramatiq's Lua `fetch` on the real Redis)."""
    fetch = broker._dispatch("fetch")
    calls = [0]

    def counted(*args: object) -> object:
        calls[0] += 1
        return fetch(*args)

    broker.do_fetch = counted
    return calls


def test_an_idle_consumer_waits_without_polling_and_wakes_on_enqueue(
    redis_url: str, namespace: str
) -> None:
    broker = _broker(redis_url, namespace)
    consumer = broker.consume("posting", prefetch=1, timeout=3000)
    fetches = _count_fetches(broker)
    try:
        started = time.monotonic()
        threading.Timer(0.3, lambda: broker.enqueue(_message())).start()
        assert next(consumer) is None  # woken by the doorbell, long before the 3 s timeout
        woke_after = time.monotonic() - started
        message = next(consumer)
        assert message is not None and message.actor_name == "post_pending"
        assert 0.25 < woke_after < 1.5
        assert fetches[0] == 2  # one that found nothing, one after the doorbell rang
    finally:
        consumer.close()
        broker.close()


def test_a_socket_timeout_shorter_than_the_wait_is_respected(
    redis_url: str, namespace: str
) -> None:
    """`?socket_timeout=` in the Redis URL caps the doorbell wait instead of failing it."""
    separator = "&" if "?" in redis_url else "?"
    broker = _broker(f"{redis_url}{separator}socket_timeout=0.5", namespace)
    consumer = broker.consume("posting", prefetch=1, timeout=3000)
    try:
        started = time.monotonic()
        assert next(consumer) is None
        assert time.monotonic() - started < 1.0
    finally:
        consumer.close()
        broker.close()


def test_a_wait_leaves_redis_room_to_answer_inside_the_socket_timeout(
    redis_url: str, namespace: str
) -> None:
    """Redis ends a blocked wait on a tick of its timer (every 100 ms by default), not at
    the instant asked: a wait of 0.8 of a 0.5 s socket timeout met the timeout now and then
    on a loaded machine."""
    separator = "&" if "?" in redis_url else "?"
    for socket_timeout, longest in ((0.5, 0.25), (1.0, 0.75), (10.0, 3.0)):
        broker = _broker(f"{redis_url}{separator}socket_timeout={socket_timeout}", namespace)
        consumer = broker.consume("posting", prefetch=1, timeout=3000)
        try:
            assert consumer._wait_s() == pytest.approx(longest)
        finally:
            consumer.close()
            broker.close()


def test_a_wait_that_outlives_the_socket_timeout_is_no_ring_and_the_consumer_goes_on(
    redis_url: str, namespace: str
) -> None:
    """A socket timeout shorter than Redis can answer in: each doorbell wait may time out,
    and is then an empty turn; a message enqueued meanwhile still arrives."""
    separator = "&" if "?" in redis_url else "?"
    broker = _broker(f"{redis_url}{separator}socket_timeout=0.02", namespace)
    consumer = broker.consume("posting", prefetch=1, timeout=3000)
    try:
        for _ in range(5):
            assert next(consumer) is None
        broker.enqueue(_message())
        deadline = time.monotonic() + 5
        while (message := next(consumer)) is None:
            assert time.monotonic() < deadline
        consumer.ack(message)
    finally:
        consumer.close()
        broker.close()


def test_messages_enqueued_together_arrive_in_order_and_ring_the_doorbell(
    redis_url: str, namespace: str
) -> None:
    broker = _broker(redis_url, namespace)
    consumer = broker.consume("posting", prefetch=100, timeout=3000)
    sent = [
        Message(queue_name="posting", actor_name="post_pending", args=(n,), kwargs={}, options={})
        for n in range(80)
    ]
    try:
        started = time.monotonic()
        threading.Timer(0.3, lambda: broker.enqueue_many(sent)).start()
        assert next(consumer) is None  # idle until the ring wakes it
        assert time.monotonic() - started < 1.5
        received = []
        while len(received) < len(sent):
            message = next(consumer)
            if message is not None:
                received.append(message)
                consumer.ack(message)
        assert [m.args for m in received] == [(n,) for n in range(80)]
        assert len({m.options["redis_message_id"] for m in received}) == 80
        bell = redis.Redis.from_url(redis_url).llen(f"{namespace}:posting.doorbell")
        assert bell <= 64  # one token per message, capped
    finally:
        consumer.close()
        broker.close()
