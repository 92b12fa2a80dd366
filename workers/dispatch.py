"""The posting dispatcher: turns committed PENDING intents into posting messages.

The gateway commits intents with a `NOTIFY vaultcraft_pending`; this loop LISTENs and
sends a `post_pending` message: at once when the last one went out a while ago, else once
the kick interval (`VAULTCRAFT_POSTING_KICK_INTERVAL_MS`) has passed since it, for
everything committed meanwhile. The broker message is derived from the database, never
sent by the gateway itself, so an intent committed just before a crash still gets posted:
on start, and whenever it has heard nothing for a second, the loop also looks for PENDING
transfers directly (an indexed probe) and kicks the workers if any wait. While a posting
session claims (`workers.posting_session`: a kicked worker staying on while transfers keep
coming) a kick is not sent; the session claims what was committed.
Like every sender, it sends by actor name (`messaging.messages`), never importing the
posting worker.
"""

from __future__ import annotations

import logging
import threading
import time

import dramatiq.errors
import psycopg
import redis
from psycopg import sql

from ledger_core.channels import PENDING_CHANNEL
from ledger_core.persistence.transfers.pending_probe import pending_waiting
from messaging.broker import setup_broker
from messaging.messages import kick_posting
from runtime.settings import to_psycopg_url
from workers import db, posting_session

log = logging.getLogger("vaultcraft.dispatch")

IDLE_PROBE_S = 1.0


def _kick() -> None:
    """Kick the posting workers, unless a posting session is claiming anyway."""
    broker = setup_broker()
    if not posting_session.running(broker):
        kick_posting(broker)


def _psycopg_url() -> str:
    return to_psycopg_url(db.database_url(db.settings()))


def listen_once(
    conn: psycopg.Connection[tuple[object, ...]], stop: threading.Event, kick_every_s: float
) -> None:
    """Wait for intents, kick the posting workers, and probe for missed work when idle.

    At most one kick every `kick_every_s`. A kick wakes a worker that claims everything
    committed, so more of them under load bought nothing but the kicks' own cost: a
    notification heard, a message enqueued, a posting run started that mostly found its
    work claimed already (at a fixed 1,000 transfers/s the relay spent about 0.13 CPU-ms a
    transfer on them with a 2 ms window: BENCHMARKS.md). After a kick the loop sleeps that
    long, so the notifications of the commits meanwhile are read together, not woken for
    one by one. A trickle still kicks at once. A longer interval makes posting batches
    larger under a steady stream (less CPU a transfer) and adds up to that much to the time
    from commit to posted."""
    conn.execute(sql.SQL("LISTEN {}").format(sql.Identifier(PENDING_CHANNEL)))
    probe_after = 0.0
    while not stop.is_set():
        heard = False
        for _ in conn.notifies(timeout=IDLE_PROBE_S, stop_after=1):
            heard = True
        if heard:
            for _ in conn.notifies(timeout=0):
                pass  # committed before the kick below: its claim covers them
            _kick()
            stop.wait(kick_every_s)  # later commits' notifications queue up, read at once
            continue
        if pending_waiting(conn, probe_after):
            log.info("Found PENDING transfers nobody announced; kicking the posting workers.")
            _kick()
        probe_after = IDLE_PROBE_S


def run_dispatcher(stop: threading.Event) -> None:
    """Run until `stop` is set, reconnecting whenever PostgreSQL or the broker fails.

    After a broker failure the loop starts over with its probe, so the kick that failed
    is sent again if transfers still wait.
    """
    while not stop.is_set():
        try:
            with psycopg.connect(
                _psycopg_url(), autocommit=True, application_name="vaultcraft-dispatch"
            ) as conn:
                listen_once(conn, stop, db.settings().posting_kick_interval_ms / 1000)
        except psycopg.OperationalError as exc:
            log.warning("Dispatcher lost PostgreSQL (%s); reconnecting in 1 s.", exc)
            time.sleep(1.0)
        except (dramatiq.errors.BrokerConnectionError, redis.RedisError) as exc:
            log.warning("Dispatcher could not reach the broker (%s); retrying in 1 s.", exc)
            time.sleep(1.0)
