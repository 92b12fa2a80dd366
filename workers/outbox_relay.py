"""The outbox relay: publish committed events to the event stream and to webhooks.

A loop in the relay process. It LISTENs on `vaultcraft_outbox` (NOTIFYed by the outbox's
insert trigger at each writer's commit, and by redeliveries) and polls every second in
case a notification was missed; after a wake-up it rests `VAULTCRAFT_OUTBOX_REST_MS`, so
under load one round serves many commits. Each wake-up it:

1. locks the relay's position (a second relay waits its turn) and takes the events after
   it that may be published now, in id order (`claim_events`: it stops at an id it
   cannot see until that id's transaction is known to have ended);
2. appends each event to the Redis Stream `vaultcraft:events` (XADD, length capped) and,
   with `VAULTCRAFT_EVENTS_AMQP_URL`, publishes it to RabbitMQ's `vaultcraft.events`
   exchange, waiting for the broker's confirms (`workers.event_exchange`);
3. creates the batch's webhook deliveries, moves the position and commits the one
   transaction of 1-3; then enqueues every delivery's first attempt (one round trip on
   Redis);
4. repeats while batches come back full, then sends deliveries whose time has come and
   whose message is missing (`dispatch_due_deliveries`): redeliveries and lost retries.

A batch that stopped at a gap (an id not visible yet) waits for the next notification, at
most `GAP_POLL_S`: the commit that fills it NOTIFYs. A second wake-up that finds the
same gap reads a horizon, which settles the gap once every transaction that might still
fill it has ended (a rolled-back id); while it has not, the relay looks again every
`GAP_POLL_S` rather than at every other commit.

A batch whose publication failed (Redis or RabbitMQ down) is rolled back, position with
it, so this relay publishes that same batch again before anything newer: a broker outage
delays events without reordering them.

Batches run on the relay's own psycopg connection, kept open between wake-ups.
A relay killed between 1 and 3 loses its connection and PostgreSQL rolls its position
back at once; one that hangs there is cut off after `VAULTCRAFT_OUTBOX_LEASE_S` idle in its
transaction (`idle_in_transaction_session_timeout`). Publication is at least once: the
stream may then hold an event twice (consumers dedupe by event id), webhooks never get a
second relayed delivery.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import Counter
from collections.abc import Callable, Sequence

import dramatiq.errors
import pika.exceptions
import psycopg
import redis
from dramatiq import Broker
from psycopg import sql
from sqlalchemy import Engine
from sqlalchemy.exc import DBAPIError

from ledger_core.persistence.events.deliveries import dispatch_due_deliveries
from ledger_core.persistence.events.outbox_relay import (
    OUTBOX_CHANNEL,
    Claim,
    ClaimedEvent,
    Horizon,
    claim_events,
    finish_events,
    outbox_backlog,
    read_horizon,
)
from messaging.broker import redis_url, setup_broker
from runtime import metrics
from runtime.logs import info_line
from runtime.settings import Settings, to_psycopg_url
from workers import db
from workers.event_exchange import EventExchange
from workers.event_stream import append_events
from workers.webhook_queue import send_attempt, send_attempts

log = logging.getLogger("vaultcraft.outbox")

APPLICATION_NAME = "vaultcraft-outbox-relay"
POLL_S = 1.0
DUE_EVERY_S = 0.5
"""Deliveries found due in PostgreSQL (retries whose time came, lost messages) are looked
for at most this often, not at every wake-up: under load the relay wakes for every commit."""
GAUGE_EVERY_S = 5.0
GAP_POLL_S = 0.05
"""How long a relay whose batch stopped at a gap waits for a notification before it looks
again. A commit in flight fills the gap and NOTIFYs as it does; a rolled-back id NOTIFYs
nothing, and is settled by the horizon read when a second wake-up finds the gap still
there."""


class OutboxRelay:
    """One relay's connections and knobs; `drain()` does one wake-up's work."""

    def __init__(
        self,
        settings: Settings,
        engine: Engine,
        client: redis.Redis,
        broker: Broker,
        exchange: EventExchange | None = None,
    ):
        self.settings = settings
        self.engine = engine
        self.redis = client
        self.broker = broker
        self.exchange = exchange
        self._gauges_at = 0.0
        self._due_at = 0.0
        self._conn: psycopg.Connection[tuple[object, ...]] | None = None
        self._horizon: Horizon | None = None
        self.blocked = False
        """The last batch stopped at a gap: events wait behind an id not yet settled."""
        self._stuck_at: int | None = None
        """The position of the last batch that stopped at a gap before publishing anything:
        a second such batch at the same position reads a horizon."""

    def publish(self, events: Sequence[ClaimedEvent]) -> None:
        append_events(self.redis, events, self.settings.event_stream_maxlen)
        if self.exchange is not None:
            self.exchange.publish(events)

    def _connection(self) -> psycopg.Connection[tuple[object, ...]]:
        """The batches' connection, opened on first use and after a failure."""
        if self._conn is None or self._conn.closed:
            self._conn = psycopg.connect(
                to_psycopg_url(self.engine.url.render_as_string(hide_password=False)),
                autocommit=True,
                application_name=APPLICATION_NAME,
                # a relay hung mid-batch gives its locked events up after the lease
                options=f"-c idle_in_transaction_session_timeout={self.settings.outbox_lease_s}s",
            )
        return self._conn

    def close(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            conn.close()

    def relay_batch(self) -> int:
        """Take, publish and finish one batch in one transaction; returns how many events it
        published. A failed publication rolls the batch back, so it is the next one taken."""
        conn = self._connection()
        try:
            with conn.transaction():
                claim = claim_events(conn, self.settings.outbox_batch_size, self._horizon)
                if claim.events:
                    self.publish(claim.events)
                deliveries = finish_events(conn, claim, self.settings.webhook_rescue_after_s)
            self._follow_gap(conn, claim)
        except psycopg.Error:
            self.close()
            raise
        events = claim.events
        if not events:
            return 0
        send_attempts(self.broker, deliveries, 1)
        for event_type, count in Counter(e.type for e in events).items():
            metrics.events_relayed_total.labels(event_type).inc(count)
        info_line(
            log.name, f"Relayed {len(events)} events and {len(deliveries)} webhook deliveries."
        )
        return len(events)

    @property
    def waiting_on_horizon(self) -> bool:
        """Stopped at the same gap again, with a horizon that has not settled: some
        transaction that might fill the gap is still running. Other commits' wake-ups
        cannot help until it ends, so the relay looks again only every `GAP_POLL_S`
        instead of reading the events after the gap at each one."""
        return self._stuck_at is not None and self._horizon is not None

    def _follow_gap(self, conn: psycopg.Connection[tuple[object, ...]], claim: Claim) -> None:
        """After a batch: drop a horizon it settled; read one when a second batch in a row
        stopped at the same gap without publishing anything."""
        if claim.settled:
            self._horizon = None
        stuck = claim.position if claim.blocked and not claim.events else None
        if stuck is not None and stuck == self._stuck_at and self._horizon is None:
            self._horizon = read_horizon(conn)
        self._stuck_at = stuck
        self.blocked = claim.blocked

    def dispatch_due(self) -> int:
        with self.engine.begin() as conn:
            due = dispatch_due_deliveries(
                conn,
                max_attempts=self.settings.webhook_max_attempts,
                grace_s=self.settings.webhook_rescue_after_s,
            )
        for delivery_id, attempt in due:
            send_attempt(self.broker, delivery_id, attempt)
        if due:
            log.info("Sent %d webhook attempts found due in PostgreSQL.", len(due))
        return len(due)

    def drain(self) -> None:
        while self.relay_batch() >= self.settings.outbox_batch_size:
            pass
        now = time.monotonic()
        if now - self._due_at >= DUE_EVERY_S:
            self._due_at = now
            self.dispatch_due()
        if now - self._gauges_at >= GAUGE_EVERY_S:
            self._gauges_at = now
            with self.engine.connect() as conn:
                backlog, oldest_age = outbox_backlog(conn)
            metrics.outbox_backlog.set(backlog)
            metrics.outbox_oldest_unsent_age_seconds.set(oldest_age)


def _listen(dsn: str, relay: OutboxRelay, stop: threading.Event) -> None:
    """Drain at every wake-up, resting `VAULTCRAFT_OUTBOX_REST_MS` after each round.

    Every posting commit NOTIFYs; under load a round per commit cost about a millisecond of
    the relay's CPU each for a handful of events. Resting after a round lets the
    notifications of the commits meanwhile be read together: an event waits that long more
    at most, a lone commit is relayed at once."""
    rest_s = relay.settings.outbox_rest_ms / 1000
    with psycopg.connect(dsn, autocommit=True, application_name=APPLICATION_NAME) as conn:
        conn.execute(sql.SQL("LISTEN {}").format(sql.Identifier(OUTBOX_CHANNEL)))
        while not stop.is_set():
            relay.drain()
            if stop.wait(rest_s):  # later commits' notifications queue up meanwhile
                return
            timeout = GAP_POLL_S if relay.blocked else POLL_S
            # Waiting on a long transaction, notifications cannot help: sleep the poll out.
            stop_after = None if relay.waiting_on_horizon else 1
            for _ in conn.notifies(timeout=timeout, stop_after=stop_after):
                pass


def run_outbox_relay(settings: Settings) -> Callable[[threading.Event], None]:
    """The relay loop for `workers.relay`: runs until `stop`, reconnecting after failures."""

    def loop(stop: threading.Event) -> None:
        url = db.database_url(settings)
        engine = db.pooled_engine(
            url, pool_size=1, max_overflow=1, application_name=APPLICATION_NAME
        )
        client = redis.Redis.from_url(redis_url(settings), socket_timeout=10)
        exchange = EventExchange(settings.events_amqp_url) if settings.events_amqp_url else None
        relay = OutboxRelay(settings, engine, client, setup_broker(settings), exchange)
        dsn = to_psycopg_url(url)
        while not stop.is_set():
            try:
                _listen(dsn, relay, stop)
            except (
                psycopg.Error,
                DBAPIError,
                redis.RedisError,
                pika.exceptions.AMQPError,
                dramatiq.errors.BrokerConnectionError,
            ) as exc:
                log.warning("Outbox relay lost a connection (%s); retrying in 1 s.", exc)
                stop.wait(1.0)
        relay.close()
        engine.dispose()
        if exchange is not None:
            exchange.close()

    return loop
