"""A Compose CLI for the operations tests, installed from Debian's packages if missing."""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Iterator

import pytest

from tests.support.databases import fresh_database


def _works(command: list[str]) -> bool:
    try:
        return subprocess.run(command, capture_output=True, timeout=60).returncode == 0
    except (OSError, subprocess.TimeoutExpired):
        return False


def _install_compose() -> None:
    """CI machines start fresh: Debian's docker-compose validates the file without a daemon."""
    if os.geteuid() != 0 or not shutil.which("apt-get"):
        return
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    try:
        subprocess.run(["apt-get", "update", "-qq"], capture_output=True, env=env, timeout=120)
        subprocess.run(
            ["apt-get", "install", "-y", "-qq", "docker-compose"],
            capture_output=True,
            env=env,
            timeout=150,
        )
    except subprocess.TimeoutExpired:
        return  # the caller reports that no Compose CLI is available


@pytest.fixture(scope="session")
def compose_cli() -> list[str]:
    """`docker compose` (v2 plugin) when present, else `docker-compose`, installed if missing."""
    for _attempt in range(2):
        if shutil.which("docker") and _works(["docker", "compose", "version"]):
            return ["docker", "compose"]
        if shutil.which("docker-compose") and _works(["docker-compose", "version"]):
            return ["docker-compose"]
        _install_compose()
    if os.environ.get("CI"):
        pytest.fail("no Compose CLI could be found or installed")
    pytest.skip("no Compose CLI on this machine (run as root with apt-get to install one)")


@pytest.fixture(scope="module")
def own_database(service_urls: tuple[str, str]) -> Iterator[str]:
    """A migrated database for this module alone: its tests count every row there is."""
    with fresh_database(service_urls[0], prefix="vaultcraft_ops") as url:
        yield url
