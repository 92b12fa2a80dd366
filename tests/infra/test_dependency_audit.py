"""The dependency audit of `make test` fails on a known-vulnerable pin and passes a clean one.

`urllib3==1.24.1` has published advisories (e.g. CVE-2019-11324). Where PyPI's
vulnerability API answers, the audit names them; where only PyPI's project API answers
(some proxies), the old release cannot be checked, which fails the audit too. Either way
the audit must fail: an audit that passes it would pass anything.
"""

from __future__ import annotations

import subprocess
import sys
import urllib.error
import urllib.request
from importlib.metadata import version
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[2] / ".ci" / "audit_dependencies.py"


def _audit(requirements: str, tmp_path: Path) -> subprocess.CompletedProcess[str]:
    pins = tmp_path / "requirements.txt"
    pins.write_text(requirements)
    return subprocess.run(
        [sys.executable, str(SCRIPT), "--requirement", str(pins)],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


@pytest.fixture(scope="module", autouse=True)
def pypi_reachable() -> None:
    try:
        urllib.request.urlopen("https://pypi.org/pypi/pip/json", timeout=10).close()
    except (urllib.error.URLError, TimeoutError):
        pytest.skip("PyPI is unreachable; `make audit` cannot run here either")


def test_a_known_vulnerable_pin_fails_the_audit(tmp_path: Path) -> None:
    result = _audit("urllib3==1.24.1\n", tmp_path)
    assert result.returncode == 1, result.stdout + result.stderr
    assert "dependency audit FAILED" in result.stdout
    named = [
        line
        for line in result.stdout.splitlines()
        if line.startswith(("VULNERABLE urllib3", "UNCHECKED")) and "urllib3" in line
    ]
    assert named, result.stdout


def test_the_newest_release_of_a_clean_package_passes(tmp_path: Path) -> None:
    result = _audit(f"iniconfig=={version('iniconfig')}\n", tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "dependency audit passed: 1 distributions checked" in result.stdout
