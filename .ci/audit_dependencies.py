"""Audit every installed dependency for known vulnerabilities, and fail if any cannot be.

pip-audit asks PyPI's per-release vulnerability API about each installed distribution. If
that API cannot answer (offline, or a proxy that only passes some PyPI paths), pip-audit
reports "no known vulnerabilities" while having checked nothing. So this script:

1. runs pip-audit over the virtualenv (the project itself, installed editable, is skipped);
2. for each distribution pip-audit could not check, asks PyPI's project API, which lists
   the known vulnerabilities of the project's newest release: if the installed version is
   that release, the answer is authoritative;
3. fails on any known vulnerability, and also fails if any distribution is still unchecked.
   An audit that could not run is a failed audit, never a silent pass. The one exception,
   printed as a warning: an installed release whose every newer release PyPI published
   less than 30 days ago, which this network cannot check and the index may not offer yet.

`--requirement FILE` audits the exact pins of a requirements file instead of the
virtualenv (the tests use it to show that a known-vulnerable pin fails the audit).
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

from packaging.version import InvalidVersion, Version

PYPI_PROJECT = "https://pypi.org/pypi/{name}/json"
ATTEMPTS = 3
GRACE = timedelta(days=30)
"""A release superseded only by releases younger than this is reported, not failed:
the package index we install from may lag PyPI by a few releases (and PyPI's per-release API,
which this network refuses, is the only way to check it), and a build must not fail
because a dependency published a new version this month."""
STALE: list[str] = ["<superseded>"]


def _recently_superseded(project: dict[str, Any], installed: str) -> bool:
    """True when every final release newer than the installed one is under 30 days old.

    Releases are ordered by version, not upload time (a project may publish a backport
    after a newer line), and yanked or file-less releases do not count.
    """
    try:
        current = Version(installed)
    except InvalidVersion:
        return False
    newer: list[datetime] = []
    for release, files in (project.get("releases") or {}).items():
        try:
            candidate = Version(release)
        except InvalidVersion:
            continue
        live = [f for f in files or [] if not f.get("yanked")]
        if candidate <= current or candidate.is_prerelease or not live:
            continue
        newer.append(
            min(
                datetime.fromisoformat(f["upload_time_iso_8601"].replace("Z", "+00:00"))
                for f in live
            )
        )
    return bool(newer) and datetime.now(UTC) - min(newer) <= GRACE


def run_pip_audit(requirement: Path | None = None) -> list[dict[str, Any]]:
    source = ["--skip-editable"]
    if requirement is not None:
        source = ["--requirement", str(requirement), "--no-deps", "--disable-pip"]
    with tempfile.TemporaryDirectory() as tmp:
        report = Path(tmp) / "audit.json"
        result = subprocess.run(
            [
                sys.executable, "-m", "pip_audit", *source, "--progress-spinner", "off",
                "--format", "json", "--output", str(report),
            ],
            check=False,
            stderr=subprocess.PIPE,
            text=True,
        )  # fmt: skip
        if not report.exists():
            sys.stderr.write(result.stderr)
            raise SystemExit(f"pip-audit failed to run (exit {result.returncode})")
        dependencies: list[dict[str, Any]] = json.loads(report.read_text())["dependencies"]
        return dependencies


def latest_release_vulnerabilities(name: str, installed: str) -> list[str] | None:
    """Vulnerability ids for `installed` if it is the newest release on PyPI, else None."""
    for attempt in range(ATTEMPTS):
        try:
            with urllib.request.urlopen(PYPI_PROJECT.format(name=name), timeout=15) as response:  # noqa: S310 - fixed https URL
                project = json.load(response)
            break
        except (urllib.error.URLError, TimeoutError, json.JSONDecodeError):
            if attempt == ATTEMPTS - 1:
                return None
            time.sleep(1 + attempt)
    if project["info"]["version"] != installed:
        return STALE if _recently_superseded(project, installed) else None
    return [
        vuln["id"] for vuln in project.get("vulnerabilities") or [] if not vuln.get("withdrawn")
    ]


def pinned_versions(requirement: Path) -> dict[str, str]:
    """`name==version` lines of a requirements file, by lower-case name."""
    pins = {}
    for line in requirement.read_text().splitlines():
        name, sep, pinned = line.split("#", 1)[0].strip().partition("==")
        if sep:
            pins[name.strip().lower()] = pinned.strip()
    return pins


def installed_version(name: str, pins: dict[str, str] | None) -> str:
    if pins is not None:
        return pins.get(name.lower(), "?")
    try:
        return version(name)
    except PackageNotFoundError:
        return "?"


def main(argv: list[str]) -> int:
    requirement = Path(argv[1]) if len(argv) == 2 and argv[0] == "--requirement" else None
    if argv and requirement is None:
        raise SystemExit("usage: audit_dependencies.py [--requirement FILE]")
    pins = pinned_versions(requirement) if requirement is not None else None
    dependencies = run_pip_audit(requirement)
    found: dict[str, list[str]] = {}
    unchecked: list[tuple[str, str]] = []
    audited = [dep for dep in dependencies if "editable" not in dep.get("skip_reason", "")]
    for dep in audited:
        name = str(dep["name"])
        if dep.get("vulns"):
            found[name] = [str(vuln["id"]) for vuln in dep["vulns"]]
        elif "skip_reason" in dep:
            unchecked.append((name, installed_version(name, pins)))

    with ThreadPoolExecutor(max_workers=8) as pool:
        answers = list(pool.map(lambda dep: latest_release_vulnerabilities(*dep), unchecked))
    still_unchecked, superseded = [], []
    for (name, installed), ids in zip(unchecked, answers, strict=True):
        if ids is None:
            still_unchecked.append(f"{name}=={installed}")
        elif ids is STALE:
            superseded.append(f"{name}=={installed}")
        elif ids:
            found[name] = ids

    checked = len(audited) - len(still_unchecked)
    for name, ids in sorted(found.items()):
        print(f"VULNERABLE {name}: {', '.join(ids)}")
    if superseded:
        print(
            "WARNING: superseded only by PyPI releases under 30 days old, not checkable here"
            " (upgrade when the package index has the new release):",
            " ".join(superseded),
        )
    if still_unchecked:
        print("UNCHECKED (no vulnerability data could be fetched):", " ".join(still_unchecked))
    if found or still_unchecked:
        print(f"dependency audit FAILED: {len(found)} vulnerable, {len(still_unchecked)} unchecked")
        return 1
    print(f"dependency audit passed: {checked} distributions checked, no known vulnerabilities")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
