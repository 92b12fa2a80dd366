"""A Dramatiq actor module for the worker-metrics test: real broker, real middleware."""

from __future__ import annotations

import os
import time

import dramatiq

from messaging.broker import setup_broker
from runtime import metrics
from runtime.settings import Settings

broker = setup_broker(Settings.from_env())
QUEUE = os.environ.get("VAULTCRAFT_OPS_TEST_QUEUE", "ops-test")


@dramatiq.actor(queue_name=QUEUE, actor_name="record_event", max_retries=0)
def record_event() -> None:
    """Count one relayed event, slowly enough that both worker processes get messages."""
    time.sleep(0.02)
    metrics.events_relayed_total.labels("ops.test").inc()
