"""Debian's chromium for browser tests, installed on first use when it is missing.

The test set-up installs it with apt (root needed, as on CI and the dev machines); a
machine where that is impossible skips the browser tests locally and fails them in CI.
Playwright drives it over CDP; `playwright install` (a browser download) is never used.
"""

from __future__ import annotations

import os
import shutil
import subprocess

import pytest

CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def _unavailable(reason: str) -> None:
    if os.environ.get("CI"):
        pytest.fail(f"chromium is needed in CI: {reason}")
    pytest.skip(reason)


def ensure_chromium() -> str:
    """The chromium binary, installing Debian's package once if it is not there."""
    found = shutil.which("chromium")
    if found:
        return found
    if shutil.which("apt-get") is None or os.geteuid() != 0:
        _unavailable("chromium is missing and apt-get as root is not available to install it")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    for command in (["apt-get", "update", "-q"], ["apt-get", "install", "-y", "-q", "chromium"]):
        done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=1200)
        if done.returncode != 0:
            _unavailable(f"{' '.join(command)} failed: {done.stderr[-2000:]}")
    found = shutil.which("chromium")
    if not found:
        _unavailable("chromium was installed but is not on PATH")
    return str(found)
