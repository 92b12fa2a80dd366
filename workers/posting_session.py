"""A posting session: a kicked worker that keeps claiming while transfers keep coming.

Every kick is a broker message: the dispatcher's enqueue, Redis's scripts, a consumer's
fetch, Dramatiq's handling and acknowledgement, about 1.6 CPU-ms a message across the
system before the batch's own work (BENCHMARKS.md, "What a kick costs"). Under a steady
stream the dispatcher sends one every kick interval, each for one batch. Instead, a worker
whose run drained everything stays on for up to `SESSION_S`: it claims again once a kick
interval has passed since its last claim, and goes on while its claims find work. Meanwhile
a marker in the broker's Redis (`marker_key`, expiring after a few intervals should the
worker die) tells the dispatcher not to kick: the session will claim what was committed.

No commit is left waiting for a kick that was skipped: the session clears the marker before
its last look for PENDING transfers, so a commit the dispatcher heard while the marker
stood is committed before that look, and one it hears later finds no marker and kicks.
Only a Redis broker carries the marker; with RabbitMQ every run ends when it has drained,
as before, and the dispatcher kicks as before.

One session claims at a time: the marker is taken only if no other session holds it, so
a worker kicked before a running session set its marker drains once and leaves.

While the system runs at its capacity the session claims less often (`busy_interval_s`).
A sign of that it can read off its own claims: the transfers came in crowded intake
commits (`CROWDED_INTAKE` or more in the median one, `CROWDED_CLAIMS` claims in a row),
which happens when requests queue at a gateway for its commits, or when they arrive in
batches of their own. Then what limits the rate is what every transfer costs, and a
batch's fixed cost (a dozen round trips, the claim's planning, the commit, the
notifications) shared by four times the transfers is CPU the gateways and PostgreSQL get
back. A transfer then waits up to the longer interval for
its claim; at a moderate rate the commits stay small and the claims keep the kick interval.

A worker asked to stop ends its session at once (`EndSessionsOnShutdown`): its shutdown
waits for the batch in hand, not for the rest of the session.
"""

from __future__ import annotations

import secrets
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime

from dramatiq import Broker, Middleware, Worker
from redis import Redis

from ledger_core.persistence.transfers.posting import BatchResult

SESSION_KEY = "posting.session"
"""The marker's key, after the broker's namespace."""
SESSION_S = 2.0
"""How long one message's session lasts at most; the next kick starts another. Well inside
the workers' shutdown timeout and Dramatiq's time limit."""
IDLE_ROUNDS = 2
"""A session ends after this many claims in a row found nothing."""
CROWDED_INTAKE = 20
"""From this many transfers in the median intake commit of a claim (a commit's transfers
share their `created_at`) the claim counts as crowded. A fixed rate of half what the
machine can post comes in commits of about 5, with now and then a burst of dozens (the
median passes over it); a closed loop of 64 clients at capacity in commits of about 30
(BENCHMARKS.md)."""
CROWDED_CLAIMS = 3
"""Claims of crowded commits in a row before the busy interval: a moment's stall of a
gateway crowds a claim or two, a system at its capacity every one."""
MARKER_INTERVALS = 3
"""The marker outlives the session's last refresh by this many of its longest interval."""

_stopping = threading.Event()
"""Set while this process's worker shuts down: sessions end at their next round."""

PostPending = Callable[[Callable[[BatchResult, float], None]], bool]
"""One drain of the posting use case, telling `on_batch` of each batch; True when what
it claimed waits on wallets other batches hold."""


def marker_client(broker: Broker) -> Redis | None:
    """The Redis that carries the session marker: the broker's, if it is Redis."""
    client = getattr(broker, "client", None)
    return client if isinstance(client, Redis) else None


def marker_key(broker: Broker) -> str:
    """The marker's key, in the broker's namespace (deployments sharing a Redis keep theirs
    apart as they keep their queues)."""
    return f"{getattr(broker, 'namespace', 'dramatiq')}:{SESSION_KEY}"


def running(broker: Broker) -> bool:
    """Whether a posting session is claiming (the dispatcher then need not kick)."""
    client = marker_client(broker)
    return client is not None and bool(client.exists(marker_key(broker)))


def stay(
    broker: Broker,
    interval_s: float,
    drain: PostPending,
    on_batch: Callable[[BatchResult, float], None],
    busy_interval_s: float = 0.0,
) -> bool:
    """Claim every `interval_s` while claims find work, for at most `SESSION_S`, with the
    marker set; then clear it and drain once more. After `CROWDED_CLAIMS` claims in a row
    whose transfers came in crowded intake commits the next waits `busy_interval_s`
    instead, when that is longer. A worker whose kick finds another session claiming
    leaves at once (False): its own drain has run, and that session claims the rest.
    Returns whether the posting workers should be kicked again: what the last drain
    returned (True: what it claimed waits on busy wallets), or True without that drain when
    the worker is stopping (another worker then claims what the session would have).
    Without a Redis broker, or with no kick interval, there is no session and nothing is
    drained (False)."""
    client = marker_client(broker)
    if client is None or interval_s <= 0:
        return False
    pace = _Pace(interval_s, max(interval_s, busy_interval_s))
    with _marked(client, marker_key(broker), pace.longest_s) as refresh:
        if refresh is None:
            return False
        _rounds(pace, drain, on_batch, refresh)
    return _stopping.is_set() or drain(on_batch)


class _Pace:
    """How long a session waits before its next claim: the kick interval, or the busy one
    after `CROWDED_CLAIMS` claims of crowded intake commits in a row."""

    def __init__(self, interval_s: float, busy_interval_s: float) -> None:
        self.interval_s = interval_s
        self.longest_s = busy_interval_s
        self.crowded_in_a_row = 0

    def after(self, claim: _Counted) -> float:
        commits = sorted(claim.intake_commits.values())
        crowded = bool(commits) and commits[len(commits) // 2] >= CROWDED_INTAKE
        self.crowded_in_a_row = self.crowded_in_a_row + 1 if crowded else 0
        busy = self.crowded_in_a_row >= CROWDED_CLAIMS
        return self.longest_s if busy else self.interval_s


def _rounds(
    pace: _Pace,
    drain: PostPending,
    on_batch: Callable[[BatchResult, float], None],
    refresh: Callable[[], bool],
) -> None:
    """The session's claims, until they find nothing `IDLE_ROUNDS` times in a row, time is
    up, what one claimed waits on busy wallets (the last drain then says so), the worker
    is stopping, or another session holds the marker (its marker expired while a drain
    took long, and the session the next kick started claims now)."""
    ends = time.monotonic() + SESSION_S
    claimed_at = time.monotonic()
    wait_s = pace.interval_s
    idle = 0
    while idle < IDLE_ROUNDS and time.monotonic() < ends:
        if not refresh():
            return
        if _stopping.wait(max(0.0, claimed_at + wait_s - time.monotonic())):
            return
        claimed_at = time.monotonic()
        counted = _Counted(on_batch)
        if drain(counted):
            return
        idle = 0 if counted.claimed else idle + 1
        wait_s = pace.after(counted)


class EndSessionsOnShutdown(Middleware):
    """Ends this process's posting sessions when its worker is asked to stop: Dramatiq's
    shutdown waits for every running message, and a session would otherwise go on claiming
    for the rest of its `SESSION_S`."""

    def before_worker_boot(self, broker: Broker, worker: Worker) -> None:
        _stopping.clear()

    def before_worker_shutdown(self, broker: Broker, worker: Worker) -> None:
        _stopping.set()


class _Counted:
    """`on_batch`, counting what the batches it is told of claimed (hold actions included)
    and how many of the transfers they decided came in each intake commit (a commit's
    transfers share their `created_at`)."""

    def __init__(self, on_batch: Callable[[BatchResult, float], None]) -> None:
        self._on_batch = on_batch
        self.claimed = 0
        self.intake_commits: Counter[datetime] = Counter()

    def __call__(self, result: BatchResult, elapsed: float) -> None:
        self.claimed += result.claimed
        self.intake_commits.update(o.transfer.created_at for o in result.outcomes)
        self._on_batch(result, elapsed)


@contextmanager
def _marked(client: Redis, key: str, interval_s: float) -> Iterator[Callable[[], bool] | None]:
    """The marker, taken if no session holds it, refreshed by the callable it gives inside
    the block (False once another session holds it), and cleared on leaving it, whatever
    happened, unless it has passed to another session meanwhile. Gives None, and takes
    nothing, when another session holds it: one session at a time claims, at its own pace.

    Without this, a kick that came while a session was still draining before its marker
    was set started a second session beside it, and claims came as often as their
    intervals interleaved (every 25-30 ms with three sessions pacing at 80 ms each)."""
    expiry_ms = max(1, int(interval_s * 1000 * MARKER_INTERVALS))
    token = secrets.token_hex(8)
    if not client.set(key, token, nx=True, px=expiry_ms):
        yield None
        return

    keep_own, clear_own = client.register_script(_KEEP_OWN), client.register_script(_CLEAR_OWN)

    def refresh() -> bool:
        return bool(keep_own(keys=[key], args=[token, expiry_ms]))

    try:
        yield refresh
    finally:
        clear_own(keys=[key], args=[token])


_KEEP_OWN = """
local holder = redis.call('GET', KEYS[1])
if holder == ARGV[1] then return redis.call('PEXPIRE', KEYS[1], ARGV[2]) end
if not holder then
    redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
    return 1
end
return 0
"""
"""Extends the marker while it is this session's (takes it again if it expired and nobody
took it); 0 when another session holds it."""

_CLEAR_OWN = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""
"""Deletes the marker if it is still this session's."""
