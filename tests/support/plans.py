"""Reading PostgreSQL's JSON plans (`EXPLAIN (ANALYZE, FORMAT JSON)`) in tests."""

from __future__ import annotations


def plan_scans(plan: dict[str, object]) -> list[tuple[str, str, int]]:
    """Every scan of a JSON plan: (node type, index or relation, rows it returned)."""
    found = []
    if "Scan" in str(plan["Node Type"]):
        where = plan.get("Index Name") or plan.get("Relation Name")
        found.append((str(plan["Node Type"]), str(where), int(str(plan["Actual Rows"]))))
    for child in plan.get("Plans", []):  # type: ignore[attr-defined]
        found += plan_scans(child)
    return found
