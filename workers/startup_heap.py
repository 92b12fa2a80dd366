"""The worker processes' hook for `runtime.startup_heap`."""

from __future__ import annotations

from dramatiq import Broker, Middleware, Worker

from runtime.startup_heap import freeze_startup_objects


class FreezeAfterBoot(Middleware):
    """Freezes the process's startup objects once its worker threads have started."""

    def after_worker_boot(self, broker: Broker, worker: Worker) -> None:
        freeze_startup_objects()
