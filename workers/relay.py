"""The relay process: the posting dispatcher, the outbox relay and broker gauges.

Each loop runs in its own thread and stops on SIGTERM/SIGINT.
"""

from __future__ import annotations

import logging
import signal
import threading
from collections.abc import Callable

from vaultcraft.settings import Settings
from workers.dispatch import run_dispatcher

log = logging.getLogger("vaultcraft.relay")

Loop = Callable[[threading.Event], None]


def loops() -> list[tuple[str, Loop]]:
    return [("dispatch", run_dispatcher)]


def main(settings: Settings) -> None:
    stop = threading.Event()

    def request_stop(signum: int, _frame: object) -> None:
        log.info("Relay received signal %d; stopping.", signum)
        stop.set()

    signal.signal(signal.SIGTERM, request_stop)
    signal.signal(signal.SIGINT, request_stop)
    threads = [
        threading.Thread(target=loop, args=(stop,), name=name, daemon=True)
        for name, loop in loops()
    ]
    for thread in threads:
        thread.start()
    stop.wait()
    for thread in threads:
        thread.join(timeout=10)
