"""Messages sent to actors by name, so the sender never imports the receiving worker.

The scheduler and the reconciliation job only need to say "there is work" to actors that
other modules own; sending by name keeps those processes free of the receivers' imports.
Every receiver is safe to run twice, so a duplicate send costs a little work, nothing more.
"""

from __future__ import annotations

from typing import Any

import dramatiq
from dramatiq.brokers.redis import RedisBroker

from workers.broker import JOBS_QUEUE, POSTING_QUEUE


def send(broker: RedisBroker, queue: str, actor: str, **kwargs: Any) -> None:
    broker.enqueue(
        dramatiq.Message(queue_name=queue, actor_name=actor, args=(), kwargs=kwargs, options={})
    )


def kick_posting(broker: RedisBroker) -> None:
    """Wake a posting worker: it claims whatever is PENDING, oldest first."""
    send(broker, POSTING_QUEUE, "post_pending")


def request_settlement(broker: RedisBroker) -> None:
    send(broker, JOBS_QUEUE, "run_settlement")


def request_reconciliation(
    broker: RedisBroker, mode: str = "incremental", run_id: str | None = None
) -> None:
    send(broker, JOBS_QUEUE, "run_reconciliation", run_id=run_id, mode=mode)
