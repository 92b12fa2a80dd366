"""The `vaultcraft` command line and the CI entry point."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import uuid
from pathlib import Path

from sqlalchemy import Engine, text

from gateway.auth import check_password_sync
from vaultcraft import cli

ROOT = Path(__file__).resolve().parents[2]
COMMANDS = (
    "run",
    "migrate",
    "services",
    "gateway",
    "worker",
    "relay",
    "scheduler",
    "create-org",
    "reconcile",
    "verify",
    "audit-key",
)


def vaultcraft_argv() -> list[str]:
    script = Path(sys.executable).parent / "vaultcraft"
    return [str(script)] if script.exists() else [sys.executable, "-m", "vaultcraft.cli"]


def test_version_is_the_installed_distributions() -> None:
    """`vaultcraft --version` prints the version pyproject.toml gives the package."""
    declared = re.search(r'^version = "([^"]+)"', (ROOT / "pyproject.toml").read_text(), re.M)
    assert declared is not None

    result = subprocess.run(
        [*vaultcraft_argv(), "--version"], capture_output=True, text=True, check=True
    )

    assert result.stdout.strip() == f"vaultcraft {declared.group(1)}"


def test_audit_key_new_prints_a_key_that_public_names_again(tmp_path: Path) -> None:
    """`audit-key new` prints environment lines; `audit-key public` under that signing key
    prints the same public key (the value to retire it with)."""
    env = {**os.environ, "VAULTCRAFT_DATA_DIR": str(tmp_path)}
    env.pop("VAULTCRAFT_AUDIT_SIGNING_KEY", None)
    new = subprocess.run(
        [*vaultcraft_argv(), "audit-key", "new"],
        capture_output=True,
        text=True,
        env=env,
        check=True,
    )
    lines = dict(line.split("=", 1) for line in new.stdout.splitlines())
    assert set(lines) == {"VAULTCRAFT_AUDIT_SIGNING_KEY", "VAULTCRAFT_AUDIT_PUBLIC_KEY"}

    public = subprocess.run(
        [*vaultcraft_argv(), "audit-key", "public"],
        capture_output=True,
        text=True,
        env={**env, "VAULTCRAFT_AUDIT_SIGNING_KEY": lines["VAULTCRAFT_AUDIT_SIGNING_KEY"]},
        check=True,
    )
    assert public.stdout.strip() == lines["VAULTCRAFT_AUDIT_PUBLIC_KEY"]
    assert not (tmp_path / "audit_signing_key").exists()


def test_help_lists_every_command() -> None:
    """`vaultcraft --help` names each subcommand, without loading the gateway or workers."""
    result = subprocess.run(
        [*vaultcraft_argv(), "--help"], capture_output=True, text=True, check=True
    )

    for name in {*COMMANDS, *cli.COMMANDS}:
        assert f"\n    {name}" in result.stdout, name
    loaded = subprocess.run(
        [
            sys.executable,
            "-c",
            "import sys; from vaultcraft import cli; cli.build_parser();"
            " print(sorted(m for m in sys.modules if m.split('.')[0] in {'gateway', 'workers'}))",
        ],
        capture_output=True,
        text=True,
        check=True,
    )
    assert loaded.stdout.strip() == "[]"


def _create_org(
    env: dict[str, str], email: str, *extra: str, stdin: str = ""
) -> subprocess.CompletedProcess[str]:
    argv = [*vaultcraft_argv(), "create-org", "--name", "Acme Ops", "--email", email, *extra]
    return subprocess.run(argv, capture_output=True, text=True, env=env, timeout=120, input=stdin)


def test_create_org_makes_what_signup_makes(
    database_url: str, redis_url: str, engine: Engine, tmp_path: Path
) -> None:
    """An organization, its ADMIN (who can log in) and its SYSTEM wallet, audited as signup."""
    env = {
        **os.environ,
        "DATABASE_URL": database_url,
        "REDIS_URL": redis_url,
        "VAULTCRAFT_DATA_DIR": str(tmp_path),
        "VAULTCRAFT_BCRYPT_ROUNDS": "4",
    }
    email = f"ops-{uuid.uuid4().hex[:10]}@example.com"

    made = _create_org(
        env, email, "--password", "-", "--currency", "USD", stdin="a long enough secret\n"
    )

    assert made.returncode == 0, made.stderr
    ids = dict(line.rsplit(": ", 1) for line in made.stdout.splitlines())
    org_id = ids["Organization Acme Ops"]
    with engine.connect() as conn:
        user = conn.execute(
            text("SELECT id, role, organization_id, password_hash FROM users WHERE email = :e"),
            {"e": email},
        ).one()
        wallet = conn.execute(
            text("SELECT id, type, currency FROM wallets WHERE organization_id = :o"), {"o": org_id}
        ).one()
        audit = conn.execute(
            text("SELECT action FROM audit_logs WHERE organization_id = :o"), {"o": org_id}
        ).scalar_one()
    assert (str(user.organization_id), user.role, str(user.id)) == (
        org_id,
        "ADMIN",
        ids[f"ADMIN user {email}"],
    )
    assert check_password_sync("a long enough secret", bytes(user.password_hash))
    assert (str(wallet.id), wallet.type, wallet.currency) == (
        ids["SYSTEM wallet (USD)"],
        "SYSTEM",
        "USD",
    )
    assert audit == "auth.signup"

    # The same email again is refused, and so is a password that is too short.
    again = _create_org(env, email.upper(), "--password", "a long enough secret")
    assert again.returncode == 1 and "email_taken" in again.stderr
    short = _create_org(env, "other@example.com", "--password", "short")
    assert short.returncode == 2 and "--password" in short.stderr


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
