"""The relay process: the posting dispatcher, the outbox relay, the audit sealer, gauges.

Each loop runs in its own thread and stops on SIGTERM/SIGINT.
"""

from __future__ import annotations

import logging
import signal
import threading
from collections.abc import Callable, Iterable

import pika.exceptions
import redis

from runtime.settings import Settings, is_amqp
from runtime.startup_heap import settle_startup_heap

log = logging.getLogger("vaultcraft.relay")

Loop = Callable[[threading.Event], None]
GAUGE_INTERVAL_S = 5.0


def measure_broker(settings: Settings) -> Loop:
    """The gauge loop of `vaultcraft_queue_depth`, for whichever broker is configured."""
    from messaging.broker import QUEUES, broker_url
    from workers.queue_depth import update_queue_depth_metrics

    url = broker_url(settings)

    def loop(stop: threading.Event) -> None:
        measure = _rabbit_measure(url) if is_amqp(url) else _redis_measure(url)
        while True:  # measured at once, so a fresh relay never reports no queues at all
            try:
                update_queue_depth_metrics(measure(QUEUES))
            except (redis.RedisError, pika.exceptions.AMQPError) as exc:
                log.warning("Could not measure queue depths: %s", exc)
            if stop.wait(GAUGE_INTERVAL_S):
                return

    return loop


def _redis_measure(url: str) -> Callable[[Iterable[str]], dict[str, int]]:
    from workers.queue_depth import measure_queue_depths

    client = redis.Redis.from_url(url)
    return lambda queues: measure_queue_depths(client, queues)


def _rabbit_measure(url: str) -> Callable[[Iterable[str]], dict[str, int]]:
    """Counts through a broker of the gauge's own, whose connection is reopened after a
    failure (Dramatiq's broker keeps one per thread)."""
    from messaging import rabbit

    broker = rabbit.rabbitmq_broker(url, middleware=[])

    def measure(queues: Iterable[str]) -> dict[str, int]:
        try:
            return rabbit.measure_queue_depths(broker, queues)
        except pika.exceptions.AMQPError:
            del broker.connection
            raise

    return measure


def loops(settings: Settings) -> list[tuple[str, Loop]]:
    from workers.audit_sealer import run_audit_sealer
    from workers.dispatch import run_dispatcher
    from workers.outbox_relay import run_outbox_relay

    return [
        ("dispatch", run_dispatcher),
        ("outbox", run_outbox_relay(settings)),
        ("audit-seal", run_audit_sealer(settings)),
        ("queue-depth", measure_broker(settings)),
    ]


def main(settings: Settings) -> None:
    from runtime.metrics_exposition import start_group_metrics

    start_group_metrics("relay", settings)
    stop = threading.Event()

    def request_stop(signum: int, _frame: object) -> None:
        log.info("Relay received signal %d; stopping.", signum)
        stop.set()

    signal.signal(signal.SIGTERM, request_stop)
    signal.signal(signal.SIGINT, request_stop)
    threads = [
        threading.Thread(target=loop, args=(stop,), name=name, daemon=True)
        for name, loop in loops(settings)
    ]
    settle_startup_heap()
    for thread in threads:
        thread.start()
    stop.wait()
    for thread in threads:
        thread.join(timeout=10)
