"""Commands that read the ledger refuse when there is none, start nothing, and stay quiet."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.infra.test_cli import vaultcraft_argv
from vaultcraft.cli import NO_DATABASE

_SERVICE_VARS = ("DATABASE_URL", "REDIS_URL", "VAULTCRAFT_DATA_DIR", "XDG_RUNTIME_DIR")


def _env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in _SERVICE_VARS}
    return {**env, **extra}


@pytest.mark.parametrize("command", ["verify", "reconcile", "settle"])
def test_without_a_database_the_command_refuses_and_starts_nothing(
    command: str, tmp_path: Path
) -> None:
    result = subprocess.run(
        [*vaultcraft_argv(), command],
        cwd=tmp_path,
        env=_env(),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == NO_DATABASE == 3
    assert "no database to read" in result.stderr
    assert "Traceback" not in result.stderr + result.stdout
    assert "XDG_RUNTIME_DIR" not in result.stderr
    assert list(tmp_path.iterdir()) == []  # not even the data dir or a JWT secret in it


def test_verify_on_a_database_does_not_warn_about_the_runtime_dir(
    database_url: str, redis_url: str, tmp_path: Path
) -> None:
    result = subprocess.run(
        [*vaultcraft_argv(), "verify"],
        cwd=tmp_path,
        env=_env(
            DATABASE_URL=database_url,
            REDIS_URL=redis_url,
            VAULTCRAFT_DATA_DIR=str(tmp_path),
            PYTHONWARNINGS="default",
        ),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode in (0, 1), result.stderr
    assert "XDG_RUNTIME_DIR" not in result.stderr


def test_importing_the_embedded_servers_does_not_warn(tmp_path: Path) -> None:
    result = subprocess.run(
        [
            sys.executable,
            "-W",
            "default",
            "-c",
            "from runtime.embedded import postgres_bin_dir; print(postgres_bin_dir())",
        ],
        cwd=Path(__file__).resolve().parents[2],
        env=_env(),
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    assert result.stderr == ""
    assert result.stdout.strip().endswith("pginstall/bin")


def test_verify_stops_the_embedded_servers_it_had_to_start(tmp_path: Path) -> None:
    """A data dir whose servers are stopped: verify starts them to read, and stops them."""
    from runtime.embedded import ensure_services, postgres_running, redis_running, stop_services

    ensure_services(tmp_path, None, None)  # an embedded database exists in the data dir
    stop_services(tmp_path, None, None)
    assert not postgres_running(tmp_path) and not redis_running(tmp_path)
    try:
        result = subprocess.run(
            [*vaultcraft_argv(), "verify"],
            cwd=tmp_path,
            env=_env(VAULTCRAFT_DATA_DIR=str(tmp_path)),
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
        )
        assert result.returncode != NO_DATABASE, result.stderr
        assert not postgres_running(tmp_path), result.stderr[-2000:]
        assert not redis_running(tmp_path)
    finally:
        stop_services(tmp_path, None, None)
