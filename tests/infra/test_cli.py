"""The `vaultcraft` command line and the CI entry point."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from vaultcraft import cli

ROOT = Path(__file__).resolve().parents[2]
COMMANDS = ("run", "migrate", "services", "gateway", "worker", "relay", "scheduler")


def test_help_lists_every_command() -> None:
    """`vaultcraft --help` names each subcommand, without loading the gateway or workers."""
    script = Path(sys.executable).parent / "vaultcraft"
    argv = [str(script)] if script.exists() else [sys.executable, "-m", "vaultcraft.cli"]

    result = subprocess.run([*argv, "--help"], capture_output=True, text=True, check=True)

    for name in COMMANDS:
        assert f"\n    {name}" in result.stdout, name


def test_a_registered_command_is_parsed_with_its_arguments() -> None:
    """Adding a subcommand is one decorated function; its arguments reach the handler."""
    seen: dict[str, object] = {}

    @cli.command("echo-test", "Echo for the test.", cli.arg("--times", type=int, default=1))
    def _echo(args: object, settings: object) -> int:
        seen["times"] = getattr(args, "times", None)
        return 0

    try:
        args = cli.build_parser().parse_args(["echo-test", "--times", "3"])
        assert cli.COMMANDS[args.command].handler(args, None) == 0  # type: ignore[arg-type]
    finally:
        del cli.COMMANDS["echo-test"]
    assert seen == {"times": 3}


def test_worker_arguments_default_to_all_queues() -> None:
    args = cli.build_parser().parse_args(["worker", "--processes", "1"])

    assert (args.processes, args.threads, args.queues) == (1, 8, None)


def _ci_run_with_fake_make(tmp_path: Path, make_exit: int) -> tuple[int, str]:
    fake_bin = tmp_path / "bin"
    fake_bin.mkdir()
    calls = tmp_path / "make-calls"
    make = fake_bin / "make"
    make.write_text(f'#!/bin/sh\necho "$@" >> {calls}\nexit {make_exit}\n')
    make.chmod(0o755)
    env = {**os.environ, "PATH": f"{fake_bin}:{os.environ['PATH']}"}
    result = subprocess.run([str(ROOT / ".ci" / "run")], env=env, check=False)
    return result.returncode, calls.read_text().strip()


def test_ci_run_calls_make_test(tmp_path: Path) -> None:
    """CI runs exactly `make test` and passes when it passes."""
    code, calls = _ci_run_with_fake_make(tmp_path, 0)

    assert (code, calls) == (0, "test")


def test_ci_run_fails_when_no_tests_ran(tmp_path: Path) -> None:
    """pytest's exit 5 (no tests collected) surfaces through make as a failed build."""
    code, calls = _ci_run_with_fake_make(tmp_path, 5)

    assert calls == "test"
    assert code != 0
