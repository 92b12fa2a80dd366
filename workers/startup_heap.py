"""The worker processes' hook for `runtime.startup_heap`."""

from __future__ import annotations

from dramatiq import Broker, Middleware, Worker

from runtime.startup_heap import settle_startup_heap


class SettleHeapAfterBoot(Middleware):
    """Settles the process's heap (`runtime.startup_heap`) once its worker threads run."""

    def after_worker_boot(self, broker: Broker, worker: Worker) -> None:
        settle_startup_heap()
