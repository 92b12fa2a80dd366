"""Keep what a process built at startup out of its later garbage collections.

Modules, SQLAlchemy's tables, Dramatiq's actors, connection pools and compiled statements
live as long as the process, yet CPython's full (oldest-generation) collection walks them
all again each time it runs: 130,000-160,000 objects in each VaultCraft process, 25-130 ms
a collection, which under load was a visible share of every role's CPU (BENCHMARKS.md).
`gc.freeze()` moves everything alive now into a generation the collector never scans;
objects created later are collected as usual.
"""

from __future__ import annotations

import gc


def freeze_startup_objects() -> None:
    """Collect what startup left as garbage, then freeze everything still alive."""
    gc.collect()
    gc.freeze()
