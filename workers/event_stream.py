"""Appending relayed events to the Redis Stream `vaultcraft:events`, one write per batch.

Each event becomes one entry (`XADD`, length capped approximately) with the fields
`event` (the public event JSON), and `event_id`, `type`, `organization_id` and
`outbox_id` to filter on without parsing it. A batch's
commands are encoded here straight into the Redis protocol and sent in one write, then
every reply is read: redis-py's pipeline builds and encodes each command argument by
argument, which cost the relay more CPU than the rest of an event's work.
"""

from __future__ import annotations

from collections.abc import Sequence

import redis

from ledger_core.persistence.events.outbox_relay import ClaimedEvent

EVENT_STREAM = "vaultcraft:events"

_FIELDS = ("event", "event_id", "type", "organization_id", "outbox_id")


def _bulk(value: bytes) -> bytes:
    return b"$%d\r\n%s\r\n" % (len(value), value)


def _xadd_prefix(maxlen: int) -> bytes:
    """`XADD vaultcraft:events MAXLEN ~ <maxlen> *`, as the start of a 16-part command."""
    words = (b"XADD", EVENT_STREAM.encode(), b"MAXLEN", b"~", str(maxlen).encode(), b"*")
    return b"*%d\r\n" % (len(words) + 2 * len(_FIELDS)) + b"".join(map(_bulk, words))


_NAMES = tuple(_bulk(name.encode()) for name in _FIELDS)


def encode_batch(events: Sequence[ClaimedEvent], maxlen: int) -> bytes:
    """The XADD commands of `events`, in order, in the Redis protocol."""
    prefix = _xadd_prefix(maxlen)
    event, event_id, kind, organization_id, outbox_id = _NAMES
    parts: list[bytes] = []
    for e in events:
        parts += (
            prefix,
            event,
            _bulk(e.event_json.encode()),
            event_id,
            _bulk(e.event_id.encode()),
            kind,
            _bulk(e.type.encode()),
            organization_id,
            _bulk(e.organization_id.encode()),
            outbox_id,
            _bulk(b"%d" % e.outbox_id),
        )
    return b"".join(parts)


def append_events(client: redis.Redis, events: Sequence[ClaimedEvent], maxlen: int) -> None:
    """Append `events` to the stream in order; returns once Redis answered every XADD.

    Raises `redis.RedisError` if any was refused or the connection failed; the connection
    is then dropped, since replies may be left unread on it."""
    if not events:
        return
    payload = encode_batch(events, maxlen)
    pool = client.connection_pool
    conn = pool.get_connection()
    try:
        conn.send_packed_command([payload])  # type: ignore[no-untyped-call]
        for _ in events:
            conn.read_response()
    except BaseException:
        conn.disconnect()  # type: ignore[no-untyped-call]
        raise
    finally:
        pool.release(conn)
