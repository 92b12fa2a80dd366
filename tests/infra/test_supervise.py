"""The supervisord configuration VaultCraft generates, read back by supervisord itself."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
from supervisor.datatypes import RestartUnconditionally
from supervisor.options import ServerOptions

from runtime.settings import Settings
from vaultcraft.supervise import (
    PROCESS_TYPES,
    STOP_WAIT_S,
    Program,
    program_environment,
    resolve_commands,
    supervisord_conf,
)

ROOT = Path(__file__).resolve().parents[2]


def _load(tmp_path: Path, text: str) -> ServerOptions:
    conf = tmp_path / "supervisord.conf"
    conf.write_text(text)
    options = ServerOptions()
    options.realize(args=["-c", str(conf)])
    return options


def test_every_program_restarts_and_stops_within_bounds(tmp_path: Path) -> None:
    """Each program restarts on exit, is killed as a group, and logs to stdout."""
    programs = [Program("web", "/bin/echo web"), Program("worker", "/bin/echo w", False)]
    text = supervisord_conf(programs, data_dir=tmp_path, environment={"A": "1"})

    options = _load(tmp_path, text)

    configs = {g.name: g.process_configs[0] for g in options.process_group_configs}
    assert sorted(configs) == ["web", "worker"]
    for config in configs.values():
        assert config.autorestart is RestartUnconditionally
        assert config.killasgroup is True
        assert config.stopwaitsecs == STOP_WAIT_S
        assert config.stdout_logfile == "/dev/stdout"
        assert config.stdout_logfile_maxbytes == 0
        assert config.redirect_stderr is True
        assert config.environment == {"A": "1"}
    assert configs["web"].stopasgroup is True
    assert configs["worker"].stopasgroup is False
    assert options.nodaemon is True


def test_environment_values_survive_supervisord_parsing(tmp_path: Path) -> None:
    """URLs with percent signs, commas and colons reach the child unchanged."""
    env = {
        "DATABASE_URL": "postgresql://u:p%40ss@db.example:5432/vault?sslmode=require",
        "REDIS_URL": "unix:///tmp/data dir/redis.sock",
        "VAULTCRAFT_LIST": "a,b",
    }
    text = supervisord_conf([Program("web", "/bin/true")], data_dir=tmp_path, environment=env)

    options = _load(tmp_path, text)

    assert options.process_group_configs[0].process_configs[0].environment == env


def test_values_supervisord_cannot_carry_are_refused(tmp_path: Path) -> None:
    """A quote in a value would be silently mangled by supervisord, so it is an error."""
    with pytest.raises(ValueError, match="QUOTED"):
        supervisord_conf([], data_dir=tmp_path, environment={"QUOTED": 'say "hi"'})
    with pytest.raises(ValueError, match="plain word"):
        supervisord_conf([Program("two words", "/bin/true")], data_dir=tmp_path, environment={})


def test_vaultcraft_commands_run_with_the_given_interpreter() -> None:
    """`vaultcraft x` becomes the running interpreter's `-m vaultcraft.cli x`."""
    resolved = resolve_commands(
        [Program("web", "vaultcraft gateway"), Program("other", "/usr/bin/env true")],
        ["/venv/bin/python", "-m", "vaultcraft.cli"],
    )

    assert [p.command for p in resolved] == [
        "/venv/bin/python -m vaultcraft.cli gateway",
        "/usr/bin/env true",
    ]


def test_procfile_lists_the_same_process_types() -> None:
    """The Procfile and `vaultcraft run` start the same processes."""
    lines = [line for line in (ROOT / "Procfile").read_text().splitlines() if line.strip()]
    procfile = [tuple(part.strip() for part in line.split(":", 1)) for line in lines]

    assert procfile == [(p.name, p.command) for p in PROCESS_TYPES]


def test_program_environment_carries_urls_and_settings_but_no_secrets(tmp_path: Path) -> None:
    """Children get the resolved URLs and VAULTCRAFT_* values; the JWT key stays out of the file."""
    settings = Settings.from_env(
        {"VAULTCRAFT_DATA_DIR": str(tmp_path), "VAULTCRAFT_JWT_SECRET": "k" * 40}
    )
    settings = dataclasses.replace(settings, database_url="postgresql://db/x")
    environ = {
        "VAULTCRAFT_HTTP_PORT": "8123",
        "VAULTCRAFT_JWT_SECRET": "k" * 40,
        "VAULTCRAFT_AUDIT_SIGNING_KEY": "a" * 44,
        "VAULTCRAFT_SERVICE_DATABASE_URL": "postgresql://vaultcraft_service:pw@db/x",
        "VAULTCRAFT_METRICS_TOKEN": "m" * 32,
        "HOME": "/r",
    }

    env = program_environment(settings, environ)

    assert env["VAULTCRAFT_HTTP_PORT"] == "8123"
    assert env["VAULTCRAFT_DATA_DIR"] == str(tmp_path)
    assert env["DATABASE_URL"] == "postgresql://db/x"
    assert "VAULTCRAFT_JWT_SECRET" not in env
    assert "VAULTCRAFT_AUDIT_SIGNING_KEY" not in env
    assert "VAULTCRAFT_SERVICE_DATABASE_URL" not in env
    assert "VAULTCRAFT_METRICS_TOKEN" not in env
    assert "HOME" not in env
