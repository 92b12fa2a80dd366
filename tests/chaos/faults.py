"""The faults of a chaos run: a schedule drawn from the seed, and the hands that apply it.

Every kind of fault happens at least once per run; longer runs draw more. Faults are
applied one after another by one thread, each taking something down for a moment and
bringing it back, while the client threads keep going.
"""

from __future__ import annotations

import random
import signal
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import redis

from runtime.embedded import ensure_postgres, stop_postgres
from tests.chaos.receiver import HookReceiver
from tests.support.stack import Stack

KINDS = (
    "kill_worker",  # SIGKILL one worker process (posting or webhooks), start it again
    "kill_workers",  # SIGKILL every worker at once
    "kill_gateway",  # SIGKILL the gateway; clients see refused connections until it is back
    "flush_redis",  # the broker loses every queued message
    "restart_postgres",  # fast shutdown and start of the database server
    "receiver_refuses",  # the webhook receiver stops listening (connection refused)
    "receiver_errors",  # the webhook receiver answers 500 to everything
    "receiver_hangs",  # the webhook receiver answers nothing until past the sender's timeout
)
RECEIVER_OUTAGES = {
    "receiver_refuses": "refuse",
    "receiver_errors": "error",
    "receiver_hangs": "hang",
}
DOWN_S = dict.fromkeys(RECEIVER_OUTAGES, (1.0, 4.0))
"""How long a fault keeps its target down, by kind (others: DEFAULT_DOWN_S)."""
DEFAULT_DOWN_S = (0.2, 2.5)
RECEIVER_REST_S = 3.5
"""The receiver stays up at least this long between two outages, so they stay brief
outages (each delivery gets a try in between) even when the schedule draws several."""


@dataclass(frozen=True)
class Fault:
    at_s: float
    kind: str
    down_s: float
    target: str = ""

    def __str__(self) -> str:
        target = f" {self.target}" if self.target else ""
        return f"t+{self.at_s:5.1f}s {self.kind}{target} (down {self.down_s:.1f}s)"


def schedule(seed: int, seconds: float, workers: list[str], kinds: tuple[str, ...]) -> list[Fault]:
    """Faults spread over the run: each kind once, then one more every ~6 s, in seeded order
    (receiver outages with other faults between them)."""
    rng = random.Random(f"{seed}-faults")
    drawn = list(kinds) + [rng.choice(kinds) for _ in range(int(seconds // 6) - len(kinds))]
    rng.shuffle(drawn)
    _separate_receiver_outages(drawn, rng)
    slot = (seconds - 6) / len(drawn)
    return [
        Fault(
            at_s=3 + n * slot + rng.uniform(0, slot / 2),
            kind=kind,
            down_s=rng.uniform(*DOWN_S.get(kind, DEFAULT_DOWN_S)),
            target=rng.choice(workers) if kind == "kill_worker" else "",
        )
        for n, kind in enumerate(drawn)
    ]


def _separate_receiver_outages(drawn: list[str], rng: random.Random) -> None:
    """Put the receiver outages in seeded gaps between the other faults, one per gap
    (when there are too many of them for that, as drawn)."""
    outages = [kind for kind in drawn if kind in RECEIVER_OUTAGES]
    others = [kind for kind in drawn if kind not in RECEIVER_OUTAGES]
    if len(outages) > len(others) + 1:
        return
    gaps = set(rng.sample(range(len(others) + 1), len(outages)))
    drawn.clear()
    for n in range(len(others) + 1):
        if n in gaps:
            drawn.append(outages.pop())
        if n < len(others):
            drawn.append(others[n])


class Injector:
    """Applies faults to a running `Stack`, the Redis it uses, the PostgreSQL it owns and
    the webhook receiver its organizations subscribed with."""

    def __init__(
        self,
        stack: Stack,
        redis_url: str,
        postgres_dir: Path,
        workers: list[str],
        receiver: HookReceiver,
    ) -> None:
        self.stack = stack
        self.receiver = receiver
        self.redis_url = redis_url
        self.postgres_dir = postgres_dir
        self.workers = workers
        self.journal: list[str] = []
        self.receiver_up_at = -RECEIVER_REST_S
        self.extra: dict[str, Callable[[Fault], None]] = {}
        self.while_postgres_down: Callable[[], None] | None = None

    def run(self, faults: list[Fault], stop: threading.Event) -> None:
        started = time.monotonic()
        for fault in faults:
            if stop.wait(max(0.0, started + fault.at_s - time.monotonic())):
                return
            self.apply(fault)
            self.journal.append(f"{fault} done at t+{time.monotonic() - started:.1f}s")

    def apply(self, fault: Fault) -> None:
        if fault.kind in self.extra:
            self.extra[fault.kind](fault)
        elif fault.kind == "kill_worker":
            self._bounce([fault.target], fault.down_s)
        elif fault.kind == "kill_workers":
            self._bounce(self.workers, fault.down_s)
        elif fault.kind == "kill_gateway":
            self._bounce(["gateway"], fault.down_s)
            self.stack.wait_ready(timeout_s=120)
        elif fault.kind == "flush_redis":
            with redis.Redis.from_url(self.redis_url) as conn:
                conn.flushdb()
        elif fault.kind == "restart_postgres":
            stop_postgres(self.postgres_dir)
            if self.while_postgres_down is not None:
                self.while_postgres_down()
            time.sleep(fault.down_s)
            ensure_postgres(self.postgres_dir)
        elif fault.kind in RECEIVER_OUTAGES:
            time.sleep(max(0.0, self.receiver_up_at + RECEIVER_REST_S - time.monotonic()))
            self.receiver.go_down(RECEIVER_OUTAGES[fault.kind])
            time.sleep(fault.down_s)
            self.receiver.come_up()
            self.receiver_up_at = time.monotonic()
        else:
            raise ValueError(f"unknown fault {fault.kind}")

    def _bounce(self, names: list[str], down_s: float) -> None:
        for name in names:
            self.stack.kill(name, signal.SIGKILL)
        time.sleep(down_s)
        for name in names:
            self.stack.start(name)

    def heal(self) -> None:
        """Everything up again: the database, the receiver, then any process not running."""
        ensure_postgres(self.postgres_dir)
        self.receiver.come_up()
        for name in self.stack.names:
            if not self.stack.running(name):
                self.journal.append(f"heal: {name} was not running; started it")
                self.stack.start(name)
        self.stack.wait_ready(timeout_s=120)
