"""Startup objects are left out of later garbage collections, in every kind of process."""

from __future__ import annotations

import gc
import weakref
from collections.abc import Iterator

import pytest
from dramatiq import Worker
from dramatiq.brokers.stub import StubBroker

from runtime.startup_heap import freeze_startup_objects
from workers.startup_heap import FreezeAfterBoot


class _Node:
    def __init__(self) -> None:
        self.other: _Node | None = None


@pytest.fixture
def unfrozen() -> Iterator[None]:
    gc.unfreeze()
    try:
        yield
    finally:
        gc.unfreeze()


def test_freezing_collects_startup_garbage_and_freezes_what_lives(unfrozen: None) -> None:
    kept = _Node()
    cycle_a, cycle_b = _Node(), _Node()
    cycle_a.other, cycle_b.other = cycle_b, cycle_a
    garbage = weakref.ref(cycle_a)
    del cycle_a, cycle_b

    freeze_startup_objects()

    assert garbage() is None, "a cycle left from startup must be collected before freezing"
    assert gc.get_freeze_count() > 0
    assert not any(obj is kept for gen in range(3) for obj in gc.get_objects(gen))


def test_a_worker_process_freezes_once_its_threads_run(unfrozen: None) -> None:
    broker = StubBroker()
    broker.add_middleware(FreezeAfterBoot())
    worker = Worker(broker, worker_threads=1, worker_timeout=50)
    assert gc.get_freeze_count() == 0
    worker.start()
    try:
        assert gc.get_freeze_count() > 0
    finally:
        worker.stop()
        broker.close()
