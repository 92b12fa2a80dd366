"""Every Dramatiq actor: the job function each runs, its queue, retries and time limit.

Nothing happens when this module is imported: `declare_actors` binds the actors to the
broker it is given, and `workers.bootstrap` calls it once per worker process. The job
functions are plain functions of `workers.posting`, `workers.reconciliation`,
`workers.settlement` and `workers.webhooks`; the ones that send messages themselves
(the posting kick after busy wallets, the next webhook attempt, the kick for transfers
found stuck) take the broker as their first argument, bound here. Senders never import
this module: they send by actor name (`messaging.messages`, `workers.webhook_queue`).
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

import dramatiq
from dramatiq import Broker

from messaging.broker import JOBS_QUEUE, POSTING_QUEUE, WEBHOOKS_QUEUE
from messaging.messages import POSTING_ACTOR, RECONCILIATION_ACTOR, SETTLEMENT_ACTOR
from workers import posting, reconciliation, settlement, webhooks
from workers.webhook_queue import DELIVER_ACTOR

Actor = dramatiq.Actor[Any, None]


def declare_actors(broker: Broker) -> dict[str, Actor]:
    """Declare every actor on `broker` (once per broker); they are returned by name."""

    def declare(name: str, fn: Callable[..., None], queue: str, **options: Any) -> Actor:
        return dramatiq.actor(actor_name=name, queue_name=queue, broker=broker, **options)(fn)

    actors = [
        declare(
            POSTING_ACTOR,
            _with_broker(posting.post_pending, broker),
            POSTING_QUEUE,
            max_retries=20,
            time_limit=120_000,
        ),
        declare(
            RECONCILIATION_ACTOR,
            _with_broker(reconciliation.run_reconciliation, broker),
            JOBS_QUEUE,
            max_retries=3,
            time_limit=600_000,
            throws=(ValueError,),
        ),
        declare(
            SETTLEMENT_ACTOR,
            settlement.run_settlement,
            JOBS_QUEUE,
            max_retries=3,
            time_limit=300_000,
        ),
        declare(
            DELIVER_ACTOR,
            _with_broker(webhooks.deliver_webhook, broker),
            WEBHOOKS_QUEUE,
            max_retries=10,
            time_limit=120_000,
        ),
    ]
    return {actor.actor_name: actor for actor in actors}


def _with_broker(fn: Callable[..., None], broker: Broker) -> Callable[..., None]:
    """`fn` with `broker` as its first argument, keeping its name and module (log names)."""
    return functools.update_wrapper(functools.partial(fn, broker), fn)
