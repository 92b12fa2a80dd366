"""A Redis broker whose idle consumers wait on a doorbell instead of polling.

Dramatiq's Redis consumer polls its queue and sleeps between empty polls, up to the
worker timeout. A short timeout keeps posting latency low but costs a Redis round trip per
queue per consumer every few milliseconds, idle or not (a fifth of a 2-core machine for
the posting and webhook worker groups); a long one adds up to a second before a kick is
seen. Here every enqueue on a primary queue also pushes a token onto that queue's doorbell
list, and a consumer whose fetch came back empty blocks on the doorbell (`BLPOP`, up to
the worker timeout) instead of sleeping: idle workers cost nothing and a new message wakes
one of them at once.

The doorbell is only a wake-up: messages stay in Dramatiq's own queue structures, so a
lost or stale token at worst costs one empty fetch or one timeout. The list is trimmed so
tokens pushed while every consumer was busy cannot pile up.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any
from uuid import uuid4

import redis
from dramatiq.broker import MessageProxy
from dramatiq.brokers.redis import RedisBroker, _RedisConsumer
from dramatiq.common import compute_backoff, current_millis, dq_name, q_name
from dramatiq.errors import ConnectionClosed
from dramatiq.message import Message

DOORBELL_CAP = 64
"""Tokens kept per doorbell: more than the consumers that could be waiting on it."""
SOCKET_TIMEOUT_MARGIN_S = 0.25
"""At least this much of a Redis URL's `socket_timeout` is left unwaited by the doorbell."""


def doorbell_key(namespace: str, queue_name: str) -> str:
    return f"{namespace}:{queue_name}.doorbell"


class DoorbellRedisBroker(RedisBroker):
    """`RedisBroker` that rings a queue's doorbell on every enqueue to it."""

    @property
    def consumer_class(self) -> type[_RedisConsumer]:
        return _DoorbellConsumer

    def enqueue(self, message: Message[Any], *, delay: int | None = None) -> Message[Any]:
        enqueued = super().enqueue(message, delay=delay)
        if delay is None:
            pipe = self.client.pipeline(transaction=False)
            self._ring(pipe, message.queue_name, 1)
            pipe.execute()
        return enqueued

    def _ring(self, pipe: redis.client.Pipeline, queue_name: str, tokens: int) -> None:
        """Queue on `pipe` the push of `tokens` (at most the cap) onto a queue's doorbell."""
        key = doorbell_key(self.namespace, queue_name)
        pipe.lpush(key, *[1] * min(tokens, DOORBELL_CAP))
        pipe.ltrim(key, 0, DOORBELL_CAP - 1)

    def enqueue_many(self, messages: Sequence[Message[Any]]) -> None:
        """Enqueue messages for now (no delay), as `enqueue` does each, in one round trip.

        Every message goes through Dramatiq's own enqueue script and middleware; the
        script calls and one ring per queue (a token per message, at most the cap) are
        sent together in one pipeline.
        """
        if not messages:
            return
        pipe = self.client.pipeline(transaction=False)
        dispatch = self.scripts["dispatch"]
        sent = []
        rings: dict[str, int] = {}
        for original in messages:
            message = original.copy(options={"redis_message_id": str(uuid4())})
            self.emit_before("enqueue", message, None)
            args = self._script_args("enqueue", message.queue_name)
            args += [message.options["redis_message_id"], message.encode()]
            dispatch(args=args, keys=[self.namespace], client=pipe)
            rings[message.queue_name] = rings.get(message.queue_name, 0) + 1
            sent.append(message)
        for queue_name, count in rings.items():
            self._ring(pipe, queue_name, count)
        pipe.execute()
        for message in sent:
            self.emit_after("enqueue", message, None)

    def _script_args(self, command: str, queue_name: str) -> list[Any]:
        """The dispatch script's leading arguments, as `RedisBroker._dispatch` builds them."""
        return [
            command,
            current_millis(),
            queue_name,
            self.broker_id,
            self.heartbeat_timeout,
            self.dead_message_ttl,
            self._should_do_maintenance(command),
            self._max_unpack_size(),  # type: ignore[no-untyped-call]
        ]


class _DoorbellConsumer(_RedisConsumer):
    """Fetches like Dramatiq's consumer; when its queue is empty, waits on the doorbell.

    Delay queues (`<queue>.DQ`) hold messages with an ETA and are rung by nobody: they
    keep Dramatiq's sleep between polls.
    """

    def __next__(self) -> MessageProxy | None:
        try:
            while True:
                if self.message_cache:
                    data = self.message_cache.pop(0)
                    if data is None:
                        continue
                    self.misses = 0
                    message = Message.decode(data)
                    self.queued_message_ids.add(message.message_id)
                    return MessageProxy(message)
                room = self.prefetch - self.outstanding_message_count
                if room > 0:
                    self.message_cache = self.broker.do_fetch(self.queue_name, room)
                    if self.message_cache:
                        continue
                    if not self._is_delay_queue():
                        self._wait_for_doorbell()
                        return None
                self.misses, backoff_ms = compute_backoff(self.misses, max_backoff=self.timeout)
                time.sleep(backoff_ms / 1000)
                return None
        except redis.ConnectionError as exc:
            raise ConnectionClosed(exc) from None  # type: ignore[no-untyped-call]

    def _is_delay_queue(self) -> bool:
        return bool(self.queue_name == dq_name(q_name(self.queue_name)))

    def _wait_for_doorbell(self) -> None:
        key = doorbell_key(self.broker.namespace, self.queue_name)
        try:
            self.broker.client.blpop([key], timeout=self._wait_s())
        except redis.TimeoutError:
            pass  # a wait that outlived the socket timeout heard no ring; redis-py dropped
            # that connection, so its late answer cannot be read as another command's

    def _wait_s(self) -> float:
        """The worker timeout, kept under the client's socket timeout if the Redis URL sets
        one (`?socket_timeout=`) by a margin for Redis's own lateness: it ends a blocked
        wait on a timer tick of its `hz` (every 100 ms by default), not at the instant."""
        wait = max(int(self.timeout), 1) / 1000
        socket_timeout = self.broker.client.connection_pool.connection_kwargs.get("socket_timeout")
        if socket_timeout:
            limit = float(socket_timeout)
            wait = min(wait, limit - max(limit * 0.2, SOCKET_TIMEOUT_MARGIN_S))
        return max(wait, 0.01)
