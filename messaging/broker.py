"""The Dramatiq broker every worker process and the gateway share.

Queues: `posting` (post pending transfers), `webhooks` (deliveries), `jobs`
(reconciliation, settlement). `BROKER_URL=amqp://…` selects RabbitMQ (`messaging.rabbit`);
otherwise the broker is Redis: `BROKER_URL=redis://…` if set, else `REDIS_URL`, else the
embedded Redis under the data dir.
"""

from __future__ import annotations

import dramatiq
from dramatiq.middleware import (
    AgeLimit,
    Callbacks,
    Pipelines,
    Retries,
    ShutdownNotifications,
    TimeLimit,
)

from messaging.doorbell import DoorbellRedisBroker
from messaging.rabbit import rabbitmq_broker
from runtime.embedded import ensure_redis
from runtime.metrics_exposition import WorkerMetrics
from runtime.settings import Settings, is_amqp

POSTING_QUEUE = "posting"
WEBHOOKS_QUEUE = "webhooks"
JOBS_QUEUE = "jobs"
QUEUES = (POSTING_QUEUE, WEBHOOKS_QUEUE, JOBS_QUEUE)

_broker: dramatiq.Broker | None = None


def redis_url(settings: Settings) -> str:
    return settings.redis_url or ensure_redis(settings.data_dir)


def broker_url(settings: Settings) -> str:
    """The URL of the configured broker: `BROKER_URL`, else the Redis of `REDIS_URL`."""
    return settings.broker_url or redis_url(settings)


def setup_broker(settings: Settings | None = None) -> dramatiq.Broker:
    """Create the broker once per process and make it Dramatiq's global broker."""
    global _broker
    if _broker is None:
        settings = settings or Settings.from_env()
        middleware = [
            AgeLimit(),
            TimeLimit(),
            ShutdownNotifications(),
            Callbacks(),
            Pipelines(),
            Retries(min_backoff=50, max_backoff=5_000),
            WorkerMetrics(),
        ]
        url = broker_url(settings)
        if is_amqp(url):
            _broker = rabbitmq_broker(url, middleware)
        else:
            _broker = DoorbellRedisBroker(url=url, middleware=middleware)  # type: ignore[no-untyped-call]
        dramatiq.set_broker(_broker)
    return _broker
