"""How fast one core of this machine is right now: a fixed piece of Python work, timed.

The targets are ratios taken within one run, which cancels a machine that is slow all
run long, but not one whose speed changes part-way: on a shared virtual machine a
neighbour can halve a core's speed between the references and a scenario. The run times
this probe before each stage, with the system idle, and prints the readings beside the
figures; readings that differ by more than `DRIFT_WARNING` mark the ratios of that run as
unsafe to compare with other runs.
"""

from __future__ import annotations

import statistics
import time

WORK = 2_000_000
"""Additions per probe: about 50 ms of one core of the Intel Xeon machine in BENCHMARKS.md."""

REPEATS = 5

DRIFT_WARNING = 0.15
"""Slowest reading over fastest, minus one, above which the table warns."""


def probe_ms() -> float:
    """Median wall time of `REPEATS` runs of the fixed work, in milliseconds.

    Wall time, not process CPU time: a core lent to another virtual machine does not count
    as this process's CPU time, but it does delay the work."""
    readings = []
    for _ in range(REPEATS):
        start = time.perf_counter()
        sum(range(WORK))
        readings.append((time.perf_counter() - start) * 1000)
    return round(statistics.median(readings), 2)


def drift(readings: dict[str, float]) -> float | None:
    """Slowest reading over fastest, minus one (0.25: the slowest stage ran on a core 25 %
    slower); None with fewer than two readings."""
    values = [v for v in readings.values() if v > 0]
    if len(values) < 2:
        return None
    return round(max(values) / min(values) - 1, 3)
