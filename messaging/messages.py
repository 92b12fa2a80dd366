"""Messages sent to actors by name, so the sender never imports the receiving worker.

The scheduler and the reconciliation job only need to say "there is work" to actors that
other modules own; sending by name keeps those processes free of the receivers' imports.
Every receiver is safe to run twice, so a duplicate send costs a little work, nothing more.
"""

from __future__ import annotations

from typing import Any

import dramatiq
from dramatiq import Broker

from messaging.broker import JOBS_QUEUE, POSTING_QUEUE

POSTING_ACTOR = "post_pending"
SETTLEMENT_ACTOR = "run_settlement"
RECONCILIATION_ACTOR = "run_reconciliation"
"""The names the workers declare these actors under (`workers.actors`)."""


def send(
    broker: Broker,
    queue: str,
    actor: str,
    max_age_s: int | None = None,
    *,
    delay_ms: int | None = None,
    **kwargs: Any,
) -> None:
    """Enqueue a message for `actor`; with `max_age_s`, workers drop it once it is older;
    with `delay_ms`, it is delivered that much later."""
    options = {} if max_age_s is None else {"max_age": max_age_s * 1000}
    broker.enqueue(
        dramatiq.Message(
            queue_name=queue, actor_name=actor, args=(), kwargs=kwargs, options=options
        ),
        delay=delay_ms,
    )


def kick_posting(broker: Broker, delay_ms: int | None = None) -> None:
    """Wake a posting worker (after `delay_ms`): it claims whatever is PENDING, oldest first."""
    send(broker, POSTING_QUEUE, POSTING_ACTOR, delay_ms=delay_ms)


def request_settlement(broker: Broker, max_age_s: int | None = None) -> None:
    send(broker, JOBS_QUEUE, SETTLEMENT_ACTOR, max_age_s)


def request_reconciliation(
    broker: Broker,
    mode: str = "incremental",
    run_id: str | None = None,
    max_age_s: int | None = None,
) -> None:
    send(broker, JOBS_QUEUE, RECONCILIATION_ACTOR, max_age_s, run_id=run_id, mode=mode)
