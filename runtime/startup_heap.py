"""The garbage collector of a long-lived process, set once its startup is done.

Modules, SQLAlchemy's tables, Dramatiq's actors, connection pools and compiled statements
live as long as the process, yet CPython's full (oldest-generation) collection walks them
all again each time it runs: 100,000-160,000 objects in each VaultCraft process, 25-130 ms
a collection, which under load was a visible share of every role's CPU (BENCHMARKS.md).
`gc.freeze()` moves everything alive now into a generation the collector never scans;
objects created later are collected as usual.

The young generation is collected after `YOUNG_THRESHOLD` more tracked objects instead of
CPython's 700: a request or a posting batch holds a few thousand for a moment, and the
default made the gateway collect about a hundred times a second under load (4 % of its
CPU), each collection walking objects still in use. Garbage cycles wait a little longer;
the process's memory did not move.
"""

from __future__ import annotations

import gc

YOUNG_THRESHOLD = 20_000


def settle_startup_heap() -> None:
    """Collect what startup left as garbage, freeze everything still alive, and collect
    the young generation less often from now on."""
    gc.collect()
    gc.freeze()
    _, middle, old = gc.get_threshold()
    gc.set_threshold(YOUNG_THRESHOLD, middle, old)
