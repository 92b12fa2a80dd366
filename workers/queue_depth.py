"""Queue depth read straight from Redis, since Dramatiq does not export it.

(On RabbitMQ the counts come from `messaging.rabbit.measure_queue_depths`.)

Dramatiq's Redis broker (see its `dispatch.lua`) keeps, per queue `q` under the namespace:

- `<ns>:q`          a list of message ids not yet fetched by any worker;
- `<ns>:q.msgs`     a hash id -> message of every message not yet acknowledged: the ones
                    in the list plus the ones a worker has prefetched or is running;
- `<ns>:q.DQ` and `<ns>:q.DQ.msgs`  the same pair for messages enqueued with a delay
                    (retries with backoff land here);
- `<ns>:q.XQ`       a sorted set of dead-lettered message ids.

Depth is taken from the `.msgs` hashes, not the lists: workers prefetch eagerly (a delay
queue consumer holds up to a thousand messages in memory), so the lists alone would show
an empty queue while a backlog sits in worker memory. Dead letters are reported as `q.XQ`.
"""

from __future__ import annotations

from collections.abc import Iterable

import redis
from dramatiq.common import dq_name, xq_name

from messaging.broker import QUEUES
from runtime import metrics

NAMESPACE = "dramatiq"


def measure_queue_depths(
    client: redis.Redis,
    queues: Iterable[str] = QUEUES,
    *,
    namespace: str = NAMESPACE,
) -> dict[str, int]:
    """Return `{queue: depth}` for each queue, its delay queue (`q.DQ`) and dead letters (`q.XQ`).

    One pipelined round trip; the counts are each exact, though not one atomic snapshot.
    """
    names: list[str] = []
    pipe = client.pipeline(transaction=False)
    for queue in queues:
        for name in (queue, dq_name(queue)):
            names.append(name)
            pipe.hlen(f"{namespace}:{name}.msgs")
        names.append(xq_name(queue))
        pipe.zcard(f"{namespace}:{xq_name(queue)}")
    counts = pipe.execute()
    return {name: int(count) for name, count in zip(names, counts, strict=True)}


def update_queue_depth_metrics(depths: dict[str, int]) -> dict[str, int]:
    """Publish measured depths (of either broker) as `vaultcraft_queue_depth{queue}`."""
    for name, depth in depths.items():
        metrics.queue_depth.labels(name).set(depth)
    return depths
