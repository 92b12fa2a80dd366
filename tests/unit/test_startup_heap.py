"""Startup objects are left out of later garbage collections, in every kind of process."""

from __future__ import annotations

import gc
import weakref
from collections.abc import Iterator

import pytest
from dramatiq import Worker
from dramatiq.brokers.stub import StubBroker

from runtime.startup_heap import YOUNG_THRESHOLD, settle_startup_heap
from workers.startup_heap import SettleHeapAfterBoot


class _Node:
    def __init__(self) -> None:
        self.other: _Node | None = None


@pytest.fixture
def unfrozen() -> Iterator[None]:
    threshold = gc.get_threshold()
    gc.unfreeze()
    try:
        yield
    finally:
        gc.unfreeze()
        gc.set_threshold(*threshold)


def test_settling_collects_startup_garbage_freezes_what_lives_and_collects_less(
    unfrozen: None,
) -> None:
    kept = _Node()
    cycle_a, cycle_b = _Node(), _Node()
    cycle_a.other, cycle_b.other = cycle_b, cycle_a
    garbage = weakref.ref(cycle_a)
    del cycle_a, cycle_b

    settle_startup_heap()

    assert garbage() is None, "a cycle left from startup must be collected before freezing"
    assert gc.get_freeze_count() > 0
    assert not any(obj is kept for gen in range(3) for obj in gc.get_objects(gen))
    assert gc.get_threshold()[0] == YOUNG_THRESHOLD


def test_a_worker_process_settles_its_heap_once_its_threads_run(unfrozen: None) -> None:
    broker = StubBroker()
    broker.add_middleware(SettleHeapAfterBoot())
    worker = Worker(broker, worker_threads=1, worker_timeout=50)
    assert gc.get_freeze_count() == 0
    worker.start()
    try:
        assert gc.get_freeze_count() > 0
    finally:
        worker.stop()
        broker.close()
