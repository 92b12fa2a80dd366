"""The report: ratios against the targets, a table, and the JSON object as the last line."""

from __future__ import annotations

import io
import json
from typing import Any

from bench.report import emit, judge


def _result() -> dict[str, Any]:
    return {
        "profile": "quick",
        "references": {
            "per_commit": {"transfers_per_s": 1000.0, "clients": 16},
            "per_commit_hot": {"transfers_per_s": 500.0, "clients": 4},
            "batched": {"transfers_per_s": 10000.0, "clients": 2},
        },
        "scenarios": {
            "uniform": {"posted_per_s": 2000.0, "memory_mb": {"gateway": 120.0, "worker": 90.0}},
            "hot": {"posted_per_s": 1000.0},
            "latency": {"p50_ms": 12.0, "p99_ms": 140.0},
            "reconcile": {"seconds": None, "note": "not available"},
        },
        "invariants": {"uniform": []},
        "errors": {},
    }


def test_emit_prints_the_json_object_as_the_last_line() -> None:
    """Everything before is for people; the last line parses and carries every figure."""
    out = io.StringIO()
    emit(_result(), out)
    lines = out.getvalue().rstrip("\n").split("\n")
    parsed = json.loads(lines[-1])
    assert parsed["figures"]["uniform_ratio"] == 2.0
    assert parsed["references"]["batched"]["transfers_per_s"] == 10000.0
    assert any("uniform / per-commit reference" in line for line in lines[:-1])


def test_targets_are_judged_and_missing_figures_stay_null() -> None:
    """Met, not met, and not measured are three different answers."""
    targets = judge(_result())["targets"]
    assert targets["uniform_ratio"]["met"] is True
    assert targets["hot_ratio"] == {
        "label": "hot / per-commit reference on hot wallets",
        "target": ">= 3",
        "value": 2.0,
        "met": False,
    }
    assert targets["latency_p50_ms"]["met"] is True
    assert targets["latency_p99_ms"]["met"] is False
    assert targets["max_rss_mb"]["value"] == 120.0
    assert targets["reconcile_s"] == {
        "label": "reconcile of 1,000,000 entries (s)",
        "target": "<= 10",
        "value": None,
        "met": None,
    }
    assert targets["bulk_ratio"]["value"] is None


def test_a_quick_sized_figure_is_reported_but_not_judged() -> None:
    """100,000 entries reconciled in 1 s meets nothing: the target is about 1,000,000."""
    result = _result()
    result["scenarios"]["reconcile"] = {"seconds": 1.5, "entries": 100_000}
    result["scenarios"]["scale"] = {"posted_per_s": 1900.0, "stored_transfers": 1_000_000}
    targets = judge(result)["targets"]
    assert targets["reconcile_s"]["value"] == 1.5
    assert targets["reconcile_s"]["met"] is None
    assert "100,000 entries" in targets["reconcile_s"]["note"]
    assert targets["scale_ratio"] == {
        "label": "scale: uniform after stored transfers / empty",
        "target": ">= 0.9",
        "value": 0.95,
        "met": True,
    }


def test_a_scenario_line_says_what_a_transfer_wrote_and_stored() -> None:
    """Beside the rate: rows, WAL and the database's growth a transfer."""
    result = _result()
    result["scenarios"]["uniform"].update(
        completed=40_000,
        wall_s=20.0,
        rows_written={"rows_per_transfer": 11.2},
        wal_bytes_per_transfer=6736,
        database_bytes_per_transfer=5312,
        cpu_ms_per_transfer={"gateway": 0.3, "postgres": 0.4},
    )
    out = io.StringIO()
    emit(result, out)
    (line,) = [row for row in out.getvalue().split("\n") if "2,000.0 posted/s" in row]
    assert "11.2 rows, 6736 WAL bytes, 5312 bytes stored and 0.700 CPU-ms a transfer" in line
