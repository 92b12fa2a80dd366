"""The Grafana dashboard only queries metrics and labels that VaultCraft really exports."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from prometheus_client.metrics import MetricWrapperBase

from runtime import metrics

ROOT = Path(__file__).resolve().parents[2]
DASHBOARD = ROOT / "deploy/grafana/dashboards/vaultcraft.json"
DATASOURCES = ROOT / "deploy/grafana/provisioning/datasources/prometheus.yml"
SELECTOR = re.compile(r"\b(vaultcraft_[a-z0-9_]+)\s*(?:\{([^}]*)\})?")
MATCHER = re.compile(r"([a-zA-Z_][a-zA-Z0-9_]*)\s*(?:=~|!~|!=|=)\s*\"")
HISTOGRAM_SUFFIXES = ("_bucket", "_sum", "_count")


def _exported() -> dict[str, set[str]]:
    """Every series name VaultCraft exports, with the label names each one carries."""
    names: dict[str, set[str]] = {}
    for metric in vars(metrics).values():
        if not isinstance(metric, MetricWrapperBase):
            continue
        labels = set(metric._labelnames)
        for family in metric.describe():
            if family.type == "counter":
                names[family.name + "_total"] = labels
            elif family.type == "histogram":
                names.update({family.name + s: labels for s in HISTOGRAM_SUFFIXES})
                names[family.name + "_bucket"] = labels | {"le"}
            else:
                names[family.name] = labels
    return names


def _panels(panels: list[dict[str, Any]]) -> Iterator[dict[str, Any]]:
    for panel in panels:
        yield panel
        yield from _panels(panel.get("panels", []))


@pytest.fixture(scope="module")
def dashboard() -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads(DASHBOARD.read_text())
    return loaded


def _exprs(dashboard: dict[str, Any]) -> list[str]:
    return [t["expr"] for p in _panels(dashboard["panels"]) for t in p.get("targets", [])]


def test_every_queried_metric_is_exported(dashboard: dict[str, Any]) -> None:
    """Each vaultcraft_* name in a PromQL expression is a series runtime.metrics defines."""
    exported = _exported()
    used = {m.group(1) for expr in _exprs(dashboard) for m in SELECTOR.finditer(expr)}
    assert used, "the dashboard queries no VaultCraft metric"
    unknown = sorted(used - exported.keys())
    assert not unknown, f"dashboard queries undefined metrics: {unknown}"
    # Histogram series are only ever queried through their suffixes.
    bases = {name.removesuffix(s) for name in used for s in HISTOGRAM_SUFFIXES if name.endswith(s)}
    assert all(base + "_bucket" in exported for base in bases)


def test_label_matchers_use_existing_labels(dashboard: dict[str, Any]) -> None:
    """A `{label="..."}` filter names a label the metric has, or it would match nothing."""
    exported = _exported()
    for expr in _exprs(dashboard):
        for match in SELECTOR.finditer(expr):
            name, matchers = match.group(1), match.group(2) or ""
            for label in MATCHER.findall(matchers):
                assert label in exported[name], f"{name} has no label {label!r} ({expr})"


def test_dashboard_covers_throughput_latency_backlog_failures_and_drift(
    dashboard: dict[str, Any],
) -> None:
    """The operator's five questions each have a row, and latency uses histogram_quantile."""
    rows = {p["title"].split()[0].lower() for p in dashboard["panels"] if p["type"] == "row"}
    assert {"throughput", "latency", "backlog", "failures", "drift"} <= rows
    exprs = " ".join(_exprs(dashboard))
    assert "histogram_quantile(0.99" in exprs
    for series in ("vaultcraft_queue_depth", "vaultcraft_reconciliation_last_run_discrepancies"):
        assert series in exprs


def test_panels_use_the_provisioned_datasource(dashboard: dict[str, Any]) -> None:
    """Panels name the datasource by the uid provisioning gives it, so they load unedited."""
    uid = yaml.safe_load(DATASOURCES.read_text())["datasources"][0]["uid"]
    ids = set()
    for panel in _panels(dashboard["panels"]):
        ids.add(panel["id"])
        if panel["type"] != "row":
            assert panel["datasource"]["uid"] == uid, panel["title"]
    assert len(ids) == len(list(_panels(dashboard["panels"]))), "panel ids must be unique"
