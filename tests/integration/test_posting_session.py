"""Posting sessions on a real Redis: a kicked worker keeps claiming while transfers keep
coming, the dispatcher does not kick meanwhile, and the marker is gone before the session's
last look for PENDING transfers (so no commit waits for a kick that was skipped).

The drains here are scripted (how many transfers each batch claimed); the posting itself is
covered by the pipeline tests, which run every transfer through real workers.
"""

from __future__ import annotations

import itertools
import secrets
import time
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import cast

import dramatiq
import pytest
import redis
from dramatiq.brokers.stub import StubBroker

from ledger_core.persistence.transfers.posting import BatchResult
from ledger_core.posting import Outcome, PendingTransfer
from messaging.broker import setup_broker
from messaging.doorbell import DoorbellRedisBroker
from runtime.settings import Settings
from workers import dispatch, posting_session

INTERVAL_S = 0.02

Drain = Callable[[Callable[[BatchResult, float], None]], bool]


@pytest.fixture
def broker(redis_url: str) -> Iterator[DoorbellRedisBroker]:
    made = DoorbellRedisBroker(url=redis_url, namespace=f"session-{secrets.token_hex(4)}")  # type: ignore[no-untyped-call]
    made.declare_queue("posting")
    yield made
    client = redis.Redis.from_url(redis_url)
    for key in client.scan_iter(f"{made.namespace}*"):
        client.delete(key)


class ScriptedDrain:
    """A drain whose batches claim the given counts, one drain each, then nothing; it notes
    whether the session's marker stood during each drain."""

    def __init__(self, broker: DoorbellRedisBroker, claims: list[int], busy_at: int = -1) -> None:
        self.broker = broker
        self.claims = list(claims)
        self.busy_at = busy_at
        self.marked: list[bool] = []
        self.times: list[float] = []

    def __call__(self, on_batch: Callable[[BatchResult, float], None]) -> bool:
        self.times.append(time.monotonic())  # first: the marker's read below takes a round trip
        self.marked.append(posting_session.running(self.broker))
        claimed = self.claims.pop(0) if self.claims else 0
        if claimed:
            on_batch(BatchResult(claimed=claimed, outcomes=(), finished_at=None, more=False), 0.001)
        return len(self.marked) - 1 == self.busy_at


def _told() -> tuple[list[int], Callable[[BatchResult, float], None]]:
    claimed: list[int] = []
    return claimed, lambda result, _elapsed: claimed.append(result.claimed)


def test_a_session_claims_while_work_comes_and_ends_after_idle_claims(
    broker: DoorbellRedisBroker,
) -> None:
    drain = ScriptedDrain(broker, [5, 3, 0, 4, 0, 0, 9])
    claimed, on_batch = _told()

    busy = posting_session.stay(broker, INTERVAL_S, drain, on_batch)

    assert busy is False
    # 5, 3, an idle claim, 4, two idle claims: the session ends; the last drain finds 9
    assert claimed == [5, 3, 4, 9]
    assert drain.marked == [True] * 6 + [False], "the marker must be gone before the last look"
    rounds = drain.times[:-1]
    gaps = [later - earlier for earlier, later in itertools.pairwise(rounds)]
    assert all(gap >= INTERVAL_S * 0.9 for gap in gaps), f"claims one interval apart: {gaps}"
    assert not posting_session.running(broker)


def _decided(*commits: int) -> BatchResult:
    """A batch that posted intake commits of these many transfers each."""
    org = uuid.uuid4()
    start = datetime.now(UTC)
    stored = [
        start + timedelta(milliseconds=n) for n, size in enumerate(commits) for _ in range(size)
    ]
    outcomes = [
        Outcome(
            PendingTransfer(
                id=uuid.uuid4(),
                seq=n,
                organization_id=org,
                destination_organization_id=org,
                kind="TRANSFER",
                source_wallet_id=uuid.uuid4(),
                destination_wallet_id=uuid.uuid4(),
                amount=1,
                currency="USD",
                created_at=created_at,
            ),
            "COMPLETED",
        )
        for n, created_at in enumerate(stored)
    ]
    return BatchResult(claimed=len(outcomes), outcomes=outcomes, finished_at=start)


class DecidingDrain:
    """A drain whose claims post the given batches, one drain each, then nothing."""

    def __init__(self, batches: list[BatchResult]) -> None:
        self.batches = list(batches)
        self.times: list[float] = []

    def __call__(self, on_batch: Callable[[BatchResult, float], None]) -> bool:
        self.times.append(time.monotonic())
        if self.batches:
            on_batch(self.batches.pop(0), 0.001)
        return False


BUSY_INTERVAL_S = 0.12


def test_claims_of_crowded_intake_commits_wait_the_busy_interval(
    broker: DoorbellRedisBroker,
) -> None:
    """At capacity requests queue at the gateway and its commits grow: after
    `CROWDED_CLAIMS` claims of crowded commits in a row the session claims every busy
    interval, for larger batches; a claim or two of them (a moment's stall), a burst among
    small commits, or small commits again keep or bring back the kick interval. The marker
    outlives the longer wait."""
    assert posting_session.CROWDED_CLAIMS == 3, "the script below counts three"
    crowded = posting_session.CROWDED_INTAKE
    full = _decided(crowded, crowded + 4, crowded * 2)
    drain = DecidingDrain(
        [
            full,
            full,
            _decided(*[2] * 8),
            full,
            full,
            full,
            full,
            _decided(crowded * 6, 3, 4, 2, 5),  # a burst among small commits
            _decided(4, 3),
        ]
    )
    marked: list[bool] = []

    def on_batch(result: BatchResult, elapsed: float) -> None:
        time.sleep(INTERVAL_S * 4)  # longer than the kick interval's marker lives
        marked.append(posting_session.running(broker))

    posting_session.stay(broker, INTERVAL_S, drain, on_batch, busy_interval_s=BUSY_INTERVAL_S)

    gaps = [later - earlier for earlier, later in itertools.pairwise(drain.times)]
    busy = [gap >= BUSY_INTERVAL_S * 0.9 for gap in gaps[:9]]
    assert busy == [False, False, False, False, False, True, True, False, False], gaps
    assert all(marked), "the marker stood through the busy waits"
    assert not posting_session.running(broker)


def test_without_a_longer_busy_interval_crowded_claims_keep_the_kick_interval(
    broker: DoorbellRedisBroker,
) -> None:
    crowded = posting_session.CROWDED_INTAKE
    drain = DecidingDrain([_decided(crowded, crowded)] * 4)

    posting_session.stay(broker, BUSY_INTERVAL_S, drain, lambda r, e: None, busy_interval_s=0.05)

    gaps = [later - earlier for earlier, later in itertools.pairwise(drain.times)]
    assert all(BUSY_INTERVAL_S * 0.9 <= gap < BUSY_INTERVAL_S * 1.9 for gap in gaps[:3]), gaps


def test_one_session_claims_at_a_time(broker: DoorbellRedisBroker) -> None:
    """A worker kicked while another's session claims (the kick came before that session
    set its marker) drains once and leaves: two sessions would claim as often as their
    intervals interleave. The other session's marker stands."""
    client = posting_session.marker_client(broker)
    assert client is not None
    key = posting_session.marker_key(broker)
    client.set(key, "another session", px=5000)
    drain = ScriptedDrain(broker, [5, 3])

    assert posting_session.stay(broker, INTERVAL_S, drain, lambda r, e: None) is False

    assert drain.marked == [], "its own drain, before the session, claimed already"
    assert client.get(key) == b"another session"


def test_a_session_leaves_a_marker_that_passed_to_another(broker: DoorbellRedisBroker) -> None:
    """Should a stalled session's marker expire and another session take it, the first
    one's end does not clear the marker the other still claims under."""
    client = posting_session.marker_client(broker)
    assert client is not None
    key = posting_session.marker_key(broker)

    def taken_over(result: BatchResult, elapsed: float) -> None:
        client.set(key, "another session", px=5000)

    posting_session.stay(broker, INTERVAL_S, ScriptedDrain(broker, [5]), taken_over)

    assert client.get(key) == b"another session"


def test_a_session_stops_when_its_transfers_wait_on_busy_wallets(
    broker: DoorbellRedisBroker,
) -> None:
    drain = ScriptedDrain(broker, [5, 3, 2], busy_at=1)

    busy = posting_session.stay(broker, INTERVAL_S, drain, lambda result, elapsed: None)

    assert drain.marked == [True, True, False]
    assert busy is False, "the last drain decides: here it found nothing busy"


def test_a_session_clears_its_marker_when_a_drain_fails(broker: DoorbellRedisBroker) -> None:
    def failing(on_batch: Callable[[BatchResult, float], None]) -> bool:
        raise RuntimeError("the database went away")

    with pytest.raises(RuntimeError):
        posting_session.stay(broker, INTERVAL_S, failing, lambda result, elapsed: None)
    assert not posting_session.running(broker)


def test_without_a_kick_interval_there_is_no_session(broker: DoorbellRedisBroker) -> None:
    drain = ScriptedDrain(broker, [5, 3])
    assert posting_session.stay(broker, 0, drain, lambda result, elapsed: None) is False
    assert drain.marked == [], "the run before it drained already"


def test_the_marker_expires_if_its_worker_dies(broker: DoorbellRedisBroker) -> None:
    client = posting_session.marker_client(broker)
    assert client is not None
    client.set(posting_session.marker_key(broker), 1, px=int(INTERVAL_S * 3000))
    assert posting_session.running(broker)
    time.sleep(INTERVAL_S * 3 + 0.05)
    assert not posting_session.running(broker)


def test_the_dispatcher_does_not_kick_while_a_session_claims(
    broker: DoorbellRedisBroker, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(dispatch, "setup_broker", lambda: broker)
    client = posting_session.marker_client(broker)
    assert client is not None
    queue = f"{broker.namespace}:posting"

    client.set(posting_session.marker_key(broker), 1, px=5000)
    dispatch._kick()
    assert client.llen(queue) == 0, "a session is claiming: no message"

    client.delete(posting_session.marker_key(broker))
    dispatch._kick()
    assert client.llen(queue) == 1, "no session: the workers are kicked"


def test_sessions_of_two_namespaces_are_apart(broker: DoorbellRedisBroker, redis_url: str) -> None:
    other = DoorbellRedisBroker(url=redis_url, namespace=f"{broker.namespace}-other")  # type: ignore[no-untyped-call]
    client = posting_session.marker_client(broker)
    assert client is not None
    client.set(posting_session.marker_key(broker), 1, px=5000)
    try:
        assert posting_session.running(broker) and not posting_session.running(other)
    finally:
        client.delete(posting_session.marker_key(broker))


def test_a_broker_without_redis_has_no_sessions() -> None:
    """RabbitMQ's broker carries no Redis client: every run ends when it has drained, and
    the dispatcher always kicks."""
    stub = StubBroker()
    drain = ScriptedDrain(cast(DoorbellRedisBroker, stub), [5])
    assert posting_session.stay(stub, INTERVAL_S, drain, lambda result, elapsed: None) is False
    assert drain.marked == []
    assert not posting_session.running(stub)


class EndlessDrain:
    """A drain that claims a transfer every time, as under a steady stream."""

    def __init__(self) -> None:
        self.calls = 0

    def __call__(self, on_batch: Callable[[BatchResult, float], None]) -> bool:
        self.calls += 1
        on_batch(BatchResult(claimed=1, outcomes=(), finished_at=None, more=False), 0.001)
        return False


def test_a_stopping_worker_ends_its_session_and_hands_the_rest_on(
    broker: DoorbellRedisBroker,
) -> None:
    """Dramatiq's shutdown waits for the running message: a session must not keep it
    claiming for the rest of its `SESSION_S`. It ends at once, skips its last drain and asks
    for a kick, so another worker claims what it would have."""
    broker.add_middleware(posting_session.EndSessionsOnShutdown())
    drain = EndlessDrain()
    ended: list[tuple[bool, float]] = []

    def session() -> None:
        kick_again = posting_session.stay(broker, INTERVAL_S, drain, lambda result, elapsed: None)
        ended.append((kick_again, time.monotonic()))

    actor = dramatiq.actor(session, actor_name="session", queue_name="posting", broker=broker)
    worker = dramatiq.Worker(broker, worker_threads=1, worker_timeout=50)
    worker.start()
    try:
        actor.send()
        assert _until(lambda: posting_session.running(broker)), "the session never started"
        time.sleep(INTERVAL_S * 3)
    finally:
        stopping = time.monotonic()
        worker.stop()
        stopped = time.monotonic() - stopping
    assert ended, "the session's message did not finish"
    kick_again, at = ended[0]
    assert kick_again is True
    assert at - stopping < INTERVAL_S * 5 and stopped < posting_session.SESSION_S / 2
    assert not posting_session.running(broker)
    calls = drain.calls
    worker = dramatiq.Worker(broker, worker_threads=1, worker_timeout=50)
    worker.start()  # a worker booting again in this process has sessions again
    try:
        actor.send()
        assert _until(lambda: drain.calls > calls + IDLE_BOUND)
    finally:
        worker.stop()


def test_worker_processes_end_their_sessions_on_shutdown(redis_url: str, tmp_path: Path) -> None:
    setup_broker(Settings(database_url=None, redis_url=redis_url, data_dir=tmp_path))
    import workers.bootstrap

    middleware = workers.bootstrap.BROKER.middleware
    assert any(isinstance(m, posting_session.EndSessionsOnShutdown) for m in middleware)


IDLE_BOUND = 3
"""More claims than a session stopped at once would make."""


def _until(check: Callable[[], bool], timeout_s: float = 5.0) -> bool:
    ends = time.monotonic() + timeout_s
    while time.monotonic() < ends:
        if check():
            return True
        time.sleep(0.005)
    return check()
