"""The Dramatiq broker every worker process and the gateway share.

Queues: `posting` (post pending transfers), `webhooks` (deliveries), `jobs`
(reconciliation, settlement). The broker URL comes from Settings; without `REDIS_URL` the
embedded Redis under the data dir is used.
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
from runtime.embedded import ensure_redis
from runtime.metrics_exposition import WorkerMetrics
from runtime.settings import Settings

POSTING_QUEUE = "posting"
WEBHOOKS_QUEUE = "webhooks"
JOBS_QUEUE = "jobs"
QUEUES = (POSTING_QUEUE, WEBHOOKS_QUEUE, JOBS_QUEUE)

_broker: DoorbellRedisBroker | None = None


def redis_url(settings: Settings) -> str:
    return settings.redis_url or ensure_redis(settings.data_dir)


def setup_broker(settings: Settings | None = None) -> DoorbellRedisBroker:
    """Create the Redis broker once per process and make it Dramatiq's global broker."""
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
        _broker = DoorbellRedisBroker(url=redis_url(settings), middleware=middleware)  # type: ignore[no-untyped-call]
        dramatiq.set_broker(_broker)
    return _broker
