"""A progress line on stderr for operator commands that may run for a while.

On a terminal the current step is redrawn in place with its elapsed time, so a person
sees that a long check is alive. Anywhere else (a pipe, a CI log) each step prints one
line when it starts and one when it ends, with no control characters. stdout is left
alone for the command's result, so `vaultcraft verify > report.txt` stays clean.
"""

from __future__ import annotations

import sys
import threading
import time
from types import TracebackType
from typing import TextIO

_TICK_S = 0.2
_CLEAR = "\r\x1b[2K"


class ProgressLine:
    """Steps shown one after the other: `step(label)` ends the previous one and starts the next."""

    def __init__(self, stream: TextIO | None = None) -> None:
        self.stream = stream or sys.stderr
        self.live = _is_tty(self.stream)
        self._label: str | None = None
        self._started = 0.0
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._ticker: threading.Thread | None = None

    def step(self, label: str) -> None:
        with self._lock:
            self._finish("done")
            self._label, self._started = label, time.perf_counter()
            if self.live:
                self._draw()
            else:
                self.stream.write(f"{label} ...\n")
                self.stream.flush()
        if self.live and self._ticker is None:
            self._ticker = threading.Thread(target=self._tick, name="progress", daemon=True)
            self._ticker.start()

    def close(self, outcome: str = "done") -> None:
        """End the current step (with `outcome`) and stop redrawing."""
        self._stop.set()
        if self._ticker is not None:
            self._ticker.join(timeout=1)
        with self._lock:
            self._finish(outcome)

    def __enter__(self) -> ProgressLine:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close("failed" if exc_type is not None else "done")

    def _finish(self, outcome: str) -> None:
        if self._label is None:
            return
        elapsed = time.perf_counter() - self._started
        prefix = _CLEAR if self.live else ""
        self.stream.write(f"{prefix}{self._label}: {outcome} in {elapsed:.2f} s\n")
        self.stream.flush()
        self._label = None

    def _draw(self) -> None:
        elapsed = time.perf_counter() - self._started
        self.stream.write(f"{_CLEAR}{self._label} ... {elapsed:.1f} s")
        self.stream.flush()

    def _tick(self) -> None:
        while not self._stop.wait(_TICK_S):
            with self._lock:
                if self._label is not None:
                    self._draw()


def _is_tty(stream: TextIO) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError):
        return False
