"""The posting dispatcher against real PostgreSQL notifications: how often it kicks.

A kick wakes a posting worker that claims everything committed, so the dispatcher sends
one at once for a lone commit and at most one per kick interval under a stream of them,
the last one after every commit it heard. The kicks are recorded here instead of sent
(the broker's side is `tests/ops/test_doorbell.py` and the pipeline tests).
"""

from __future__ import annotations

import itertools
import threading
import time
from collections.abc import Iterator

import psycopg
import pytest

from ledger_core.channels import PENDING_CHANNEL
from runtime.settings import to_psycopg_url
from workers import dispatch

KICK_EVERY_S = 0.4
"""The kick interval the dispatcher runs with here (`VAULTCRAFT_POSTING_KICK_INTERVAL_MS`),
long enough to tell kicks apart."""


class _Dispatcher:
    """`listen_once` in a thread of its own, its kicks timed instead of sent."""

    def __init__(self, url: str, monkeypatch: pytest.MonkeyPatch) -> None:
        self.kicks: list[float] = []
        monkeypatch.setattr(dispatch, "_kick", lambda: self.kicks.append(time.monotonic()))
        self._stop = threading.Event()
        self._listener = psycopg.connect(url, autocommit=True)
        self._thread = threading.Thread(
            target=dispatch.listen_once, args=(self._listener, self._stop, KICK_EVERY_S)
        )
        self._notifier = psycopg.connect(url, autocommit=True)

    def start(self) -> None:
        self._thread.start()
        deadline = time.monotonic() + 5
        while not self._listening() and time.monotonic() < deadline:
            time.sleep(0.01)

    def _listening(self) -> bool:
        row = self._notifier.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE query LIKE %s AND pid <> pg_backend_pid()",
            (f"LISTEN%{PENDING_CHANNEL}%",),
        ).fetchone()
        return bool(row and row[0])

    def notify(self) -> float:
        self._notifier.execute("SELECT pg_notify(%s, '')", (PENDING_CHANNEL,))
        return time.monotonic()

    def kicks_by(self, moment: float) -> list[float]:
        return [k for k in self.kicks if k <= moment]

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=dispatch.IDLE_PROBE_S + 5)
        self._listener.close()
        self._notifier.close()


@pytest.fixture
def dispatcher(database_url: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[_Dispatcher]:
    running = _Dispatcher(to_psycopg_url(database_url), monkeypatch)
    running.start()
    yield running
    running.stop()


def _wait_for_kicks(d: _Dispatcher, count: int, within_s: float) -> None:
    deadline = time.monotonic() + within_s
    while len(d.kicks) < count and time.monotonic() < deadline:
        time.sleep(0.005)


def test_a_lone_commit_kicks_at_once(dispatcher: _Dispatcher) -> None:
    sent = dispatcher.notify()
    _wait_for_kicks(dispatcher, 1, within_s=2)
    assert dispatcher.kicks, "a commit must kick the posting workers"
    assert dispatcher.kicks[0] - sent < 0.2, "a lone commit must not wait for the kick interval"


def test_a_stream_of_commits_kicks_once_per_interval_and_after_the_last(
    dispatcher: _Dispatcher,
) -> None:
    first = dispatcher.notify()
    last = first
    while time.monotonic() - first < 0.6:
        last = dispatcher.notify()
        time.sleep(0.02)
    _wait_for_kicks(dispatcher, 3, within_s=2)
    kicks = dispatcher.kicks_by(last + 0.8)

    assert 2 <= len(kicks) <= 3, (  # 2 if the dispatcher's thread stalled past 0.6 s
        f"about 30 commits over 0.6 s: a kick at once, then one per 0.4 s: {kicks}"
    )
    assert all(later - earlier >= 0.4 for earlier, later in itertools.pairwise(kicks))
    assert kicks[-1] >= last, "the last kick must come after the last commit it was told of"
