"""Turn a run's figures into ratios against the targets, a table, and one JSON line.

The JSON object is always the last line on stdout, so `make bench | tail -1` is the result.
A figure that could not be measured is `null` with a note, never a made-up number, and its
target is reported as not met (`met: null`). So is a figure measured on a smaller data set
than the target is about (`--quick`): the reconciliation of 100,000 entries says nothing
certain about one of 1,000,000, so its `met` is `null` and its label says the size.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, TextIO

from bench.core_probe import DRIFT_WARNING, drift


@dataclass(frozen=True)
class Target:
    """One row of performance.md's targets table."""

    name: str
    label: str
    op: str  # ">=" or "<="
    threshold: float


TARGETS: tuple[Target, ...] = (
    Target("uniform_ratio", "uniform / per-commit reference", ">=", 1.5),
    Target("hot_ratio", "hot / per-commit reference on hot wallets", ">=", 3.0),
    Target("bulk_ratio", "bulk / batched reference", ">=", 0.5),
    Target("latency_p99_ms", "latency p99 (ms)", "<=", 100.0),
    Target("latency_p50_ms", "latency p50 (ms)", "<=", 20.0),
    Target("reconcile_s", "reconcile of 1,000,000 entries (s)", "<=", 10.0),
    Target("scale_ratio", "scale: uniform after stored transfers / empty", ">=", 0.9),
    Target("max_rss_mb", "largest process RSS at end of uniform (MB)", "<=", 200.0),
    Target("balance_at_ms", "scale: balance at an instant (ms)", "<=", 10.0),
    Target("metadata_list_ms", "scale: metadata-filtered transfer list (ms)", "<=", 10.0),
)


def _get(tree: dict[str, Any], *path: str) -> Any:
    node: Any = tree
    for key in path:
        if not isinstance(node, dict):
            return None
        node = node.get(key)
    return node


def ratio(numerator: float | None, denominator: float | None) -> float | None:
    if numerator is None or not denominator:
        return None
    return round(numerator / denominator, 3)


def figures(result: dict[str, Any]) -> dict[str, float | None]:
    """The figures the targets are about, derived from the raw results."""
    scen, refs = result.get("scenarios", {}), result.get("references", {})
    uniform = _get(scen, "uniform", "posted_per_s")
    memory = _get(scen, "uniform", "memory_mb") or {}
    return {
        "uniform_ratio": ratio(uniform, _get(refs, "per_commit", "transfers_per_s")),
        "hot_ratio": ratio(
            _get(scen, "hot", "posted_per_s"), _get(refs, "per_commit_hot", "transfers_per_s")
        ),
        "bulk_ratio": ratio(
            _get(scen, "bulk", "posted_per_s"), _get(refs, "batched", "transfers_per_s")
        ),
        "latency_p99_ms": _get(scen, "latency", "p99_ms"),
        "latency_p50_ms": _get(scen, "latency", "p50_ms"),
        "reconcile_s": _get(scen, "reconcile", "seconds"),
        "scale_ratio": ratio(_get(scen, "scale", "posted_per_s"), uniform),
        "max_rss_mb": max(memory.values()) if memory else None,
        "balance_at_ms": _get(scen, "scale", "history_ms", "balance_at"),
        "metadata_list_ms": _get(scen, "scale", "history_ms", "metadata_list"),
    }


FULL_SIZE = 1_000_000
"""The ledger size the reconcile and scale targets are stated for."""

UNDERSIZED: dict[str, tuple[tuple[str, ...], str]] = {
    "reconcile_s": (("reconcile", "entries"), "entries"),
    "scale_ratio": (("scale", "stored_transfers"), "stored transfers"),
    "balance_at_ms": (("scale", "stored_transfers"), "stored transfers"),
    "metadata_list_ms": (("scale", "stored_transfers"), "stored transfers"),
}


def _undersized(result: dict[str, Any], name: str) -> str | None:
    """A note when figure `name` was measured below the size its target is about."""
    if name not in UNDERSIZED:
        return None
    path, what = UNDERSIZED[name]
    size = _get(result.get("scenarios", {}), *path)
    if isinstance(size, int) and size < FULL_SIZE:
        return f"measured with {size:,} {what}, not {FULL_SIZE:,}"
    return None


def judge(result: dict[str, Any]) -> dict[str, Any]:
    """Add `figures` and `targets` (value, threshold, met) to the result and return it."""
    values = figures(result)
    targets: dict[str, Any] = {}
    for t in TARGETS:
        value = values[t.name]
        met = (
            None
            if value is None
            else (value >= t.threshold if t.op == ">=" else value <= t.threshold)
        )
        targets[t.name] = {
            "label": t.label,
            "target": f"{t.op} {t.threshold:g}",
            "value": value,
            "met": met,
        }
        note = _undersized(result, t.name)
        if note is not None:
            targets[t.name].update(met=None, note=note)
    result["figures"] = values
    result["targets"] = targets
    result["core_probe_drift"] = drift(result.get("core_probe_ms") or {})
    return result


def _fmt(value: Any) -> str:
    if value is None:
        return "n/a"
    if isinstance(value, float):
        return f"{value:,.3f}" if abs(value) < 10 else f"{value:,.1f}"
    return str(value)


def _scenario_line(scen: dict[str, Any]) -> tuple[str, str]:
    """The headline figure of a scenario and a few words on how it was made."""
    if "posted_per_s" in scen:
        sizes = _get(scen, "sizes", "posting_batch", "mean")
        rows = _get(scen, "rows_written", "rows_per_transfer")
        cpu = sum((scen.get("cpu_ms_per_transfer") or {}).values())
        return f"{_fmt(scen['posted_per_s'])} posted/s", (
            f"{scen.get('completed')} completed in {_fmt(scen.get('wall_s'))} s"
            f" (drain {_fmt(scen.get('drain_s'))} s), posting batch mean {_fmt(sizes)},"
            f" {_fmt(rows)} rows, {_fmt(scen.get('wal_bytes_per_transfer'))} WAL bytes,"
            f" {_fmt(scen.get('database_bytes_per_transfer'))} bytes stored and"
            f" {_fmt(float(cpu))} CPU-ms a transfer"
        )
    if "p99_ms" in scen:
        accept = _get(scen, "accept_latency_ms", "p50")
        client = f"202 p50 {_fmt(accept)} ms" if accept is not None else scen.get("client", "")
        cpu = sum((scen.get("cpu_ms_per_transfer") or {}).values())
        return f"p50 {_fmt(scen['p50_ms'])} / p99 {_fmt(scen['p99_ms'])} ms", (
            f"open loop at {_fmt(scen.get('rate_per_s'))}/s ({scen.get('rate_basis', '')}),"
            f" {client}, {_fmt(float(cpu))} CPU-ms a transfer"
        )
    if "seconds" in scen:
        entries = scen.get("entries")
        return f"{_fmt(scen['seconds'])} s", (
            f"full reconciliation of {entries:,} entries" if isinstance(entries, int) else ""
        )
    return "n/a", str(scen.get("note", ""))


def _probe_lines(readings: dict[str, float]) -> list[str]:
    """The core probe before each stage, and a warning when the machine's speed moved."""
    if not readings:
        return []
    listed = ", ".join(f"{stage} {_fmt(ms)}" for stage, ms in readings.items())
    lines = ["", f"core probe before each stage (ms, lower is faster): {listed}"]
    moved = drift(readings)
    if moved is not None and moved > DRIFT_WARNING:
        lines.append(
            f"WARNING: the machine's core speed moved by {moved:.0%} during the run;"
            " its ratios compare stages measured at different speeds"
        )
    return lines


def table(result: dict[str, Any]) -> str:
    """The human-readable summary: references, scenarios, targets, invariants, errors."""
    lines = ["", "VaultCraft benchmark " + f"({result.get('profile', '?')})", ""]
    lines.append(f"{'reference':<28}{'transfers/s':>14}{'clients':>9}")
    for name, ref in result.get("references", {}).items():
        rate = ref.get("transfers_per_s") if isinstance(ref, dict) else None
        clients = ref.get("clients") if isinstance(ref, dict) else None
        lines.append(f"{name:<28}{_fmt(rate):>14}{_fmt(clients):>9}")
    lines += ["", f"{'scenario':<12}{'figure':>22}  details"]
    for name, scen in result.get("scenarios", {}).items():
        if isinstance(scen, dict):
            figure, details = _scenario_line(scen)
            lines.append(f"{name:<12}{figure:>22}  {details}")
    for name, scen in result.get("scenarios", {}).items():
        timings = scen.get("analytics_ms") if isinstance(scen, dict) else None
        if timings:
            listed = ", ".join(f"{k} {_fmt(v)}" for k, v in timings.items())
            lines.append(f"analytics after {name} (ms, best of 5): {listed}")
    lines += ["", f"{'target':<52}{'value':>10}{'target':>10}  met"]
    for t in result.get("targets", {}).values():
        met = {True: "yes", False: "NO", None: "n/a"}[t["met"]]
        note = f"  ({t['note']})" if t.get("note") else ""
        lines.append(f"{t['label']:<52}{_fmt(t['value']):>10}{t['target']:>10}  {met}{note}")
    lines += _probe_lines(result.get("core_probe_ms") or {})
    violations = {k: v for k, v in result.get("invariants", {}).items() if v}
    lines += [
        "",
        "invariants 1-5: " + ("hold after every scenario" if not violations else "VIOLATED"),
    ]
    for scenario, found in violations.items():
        lines.append(f"  after {scenario}: {found}")
    for scenario, message in result.get("errors", {}).items():
        lines.append(f"error in {scenario}: {message}")
    lines.append("")
    return "\n".join(lines)


def emit(result: dict[str, Any], out: TextIO) -> None:
    """Print the table, then the JSON object as the very last line."""
    judged = judge(result)
    out.write(table(judged) + "\n")
    out.write(json.dumps(judged, sort_keys=True, default=str) + "\n")
    out.flush()
