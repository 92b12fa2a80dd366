"""The core probe: a reading per stage, and a warning when the machine's speed moved."""

from __future__ import annotations

import io

from bench.core_probe import drift, probe_ms
from bench.report import emit


def test_a_probe_reads_a_positive_time() -> None:
    assert probe_ms() > 0


def test_drift_is_the_slowest_reading_over_the_fastest() -> None:
    assert drift({"references": 50.0, "uniform": 50.0}) == 0.0
    assert drift({"references": 40.0, "uniform": 50.0, "hot": 60.0}) == 0.5
    assert drift({"references": 50.0}) is None
    assert drift({}) is None


def _table(readings: dict[str, float]) -> str:
    out = io.StringIO()
    emit({"references": {}, "scenarios": {}, "core_probe_ms": readings}, out)
    return out.getvalue()


def test_the_table_warns_when_the_machine_slowed_during_the_run() -> None:
    steady = _table({"references": 50.0, "uniform": 52.0})
    slowed = _table({"references": 50.0, "uniform": 100.0})
    assert "core probe before each stage (ms, lower is faster): references 50.0" in steady
    assert "WARNING" not in steady
    assert "WARNING: the machine's core speed moved by 100% during the run" in slowed
    assert '"core_probe_drift": 1.0' in slowed.splitlines()[-1]
