"""The process types VaultCraft runs, and the supervisord configuration that runs them.

`vaultcraft run` hands every process type to supervisord: it restarts a child that dies,
stops whole process groups on shutdown (Dramatiq forks its own worker processes) and sends
every line of output to stdout. The programs are plain data, so adding a process type is
one more entry in `PROCESS_TYPES` (and one more line in the `Procfile`, which a test keeps
in step).
"""

from __future__ import annotations

import ctypes
import dataclasses
import os
import shlex
import signal
import subprocess
import sys
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from types import FrameType

import redis
import structlog

from runtime.embedded import redis_socket, stop_postgres, stop_redis
from runtime.settings import Settings

log = structlog.get_logger(__name__)


@dataclass(frozen=True)
class Program:
    """One long-running process type: its name and the command line that starts it.

    `signal_group` sends the stop signal to the child's whole process group. Dramatiq's
    main process forwards SIGTERM to its worker processes itself, and a worker that gets
    a second SIGTERM abandons its messages, so the worker program signals only its leader.
    Every group is SIGKILLed if it has not exited after STOP_WAIT_S.
    """

    name: str
    command: str
    signal_group: bool = True


PROCESS_TYPES: tuple[Program, ...] = (
    Program("web", "vaultcraft gateway"),
    Program("worker", "vaultcraft worker --queues posting jobs", signal_group=False),
    Program(
        "webhooks",
        "vaultcraft worker --queues webhooks --metrics-group webhooks",
        signal_group=False,
    ),
    Program("relay", "vaultcraft relay"),
    Program("scheduler", "vaultcraft scheduler"),
)

STOP_WAIT_S = 10
"""Seconds a child gets to finish after SIGTERM before its whole group is killed."""


def resolve_commands(programs: Iterable[Program], executable: list[str]) -> list[Program]:
    """Replace a leading `vaultcraft` with the given command line (the running interpreter).

    supervisord may not have the virtualenv on its PATH, so the children are started with
    the same Python that runs `vaultcraft run`.
    """
    resolved = []
    for program in programs:
        argv = shlex.split(program.command)
        if argv and argv[0] == "vaultcraft":
            argv = [*executable, *argv[1:]]
        resolved.append(dataclasses.replace(program, command=shlex.join(argv)))
    return resolved


def supervisord_conf(
    programs: Iterable[Program],
    *,
    data_dir: Path,
    environment: Mapping[str, str],
    stop_wait_s: int = STOP_WAIT_S,
) -> str:
    """Return the text of a supervisord configuration running `programs` in the foreground."""
    env_line = _environment_line(environment)
    sections = [
        "[supervisord]",
        "nodaemon=true",
        "logfile=/dev/null",  # in the foreground supervisord already logs to stdout
        "logfile_maxbytes=0",
        "loglevel=info",
        f"pidfile={_escape(str(data_dir / 'supervisord.pid'))}",
        "",
        "[unix_http_server]",
        f"file={_escape(str(data_dir / 'supervisor.sock'))}",
        "chmod=0700",
        "",
        "[rpcinterface:supervisor]",
        "supervisor.rpcinterface_factory = supervisor.rpcinterface:make_main_rpcinterface",
        "",
        "[supervisorctl]",
        f"serverurl=unix://{_escape(str(data_dir / 'supervisor.sock'))}",
        "",
    ]
    for program in programs:
        if not program.name.isidentifier():
            raise ValueError(f"program name must be a plain word, got {program.name!r}")
        sections += [
            f"[program:{program.name}]",
            f"command={_escape(program.command)}",
            "autostart=true",
            "autorestart=true",
            "startsecs=1",
            "startretries=20",
            "stopsignal=TERM",
            f"stopwaitsecs={stop_wait_s}",
            f"stopasgroup={str(program.signal_group).lower()}",
            "killasgroup=true",
            "redirect_stderr=true",
            "stdout_logfile=/dev/stdout",
            "stdout_logfile_maxbytes=0",
        ]
        if env_line:
            sections.append(f"environment={env_line}")
        sections.append("")
    return "\n".join(sections)


def _environment_line(environment: Mapping[str, str]) -> str:
    pairs = []
    for key, value in sorted(environment.items()):
        if not key.isidentifier():
            raise ValueError(f"environment variable name {key!r} is not a plain word")
        if any(char in value for char in "\"'\n\r"):
            raise ValueError(f"{key} holds a quote or newline, which supervisord cannot carry")
        pairs.append(f'{key}="{_escape(value)}"')
    return ",".join(pairs)


def _escape(value: str) -> str:
    """supervisord expands `%(name)s` in values; a literal percent sign is written `%%`."""
    return value.replace("%", "%%")


SECRET_MARKS = ("SECRET", "SIGNING_KEY", "SERVICE_DATABASE_URL", "METRICS_TOKEN")
"""Settings whose values are secrets (a password may be in the service URL)."""


def program_environment(settings: Settings, environ: Mapping[str, str]) -> dict[str, str]:
    """What every child is told: the resolved URLs and the VAULTCRAFT_* settings.

    Secrets stay out of the generated file; children inherit them from supervisord.
    """
    env = {
        key: value
        for key, value in environ.items()
        if key.startswith("VAULTCRAFT_") and not any(mark in key for mark in SECRET_MARKS)
    }
    env["VAULTCRAFT_DATA_DIR"] = str(settings.data_dir)
    env["DATABASE_URL"] = settings.database_url or ""
    env["REDIS_URL"] = settings.redis_url or ""
    env["PYTHONUNBUFFERED"] = "1"
    return env


def write_conf(settings: Settings, programs: Iterable[Program] = PROCESS_TYPES) -> Path:
    """Write the supervisord configuration into the data dir (owner-only: it holds URLs)."""
    text = supervisord_conf(
        resolve_commands(programs, [sys.executable, "-m", "vaultcraft.cli"]),
        data_dir=settings.data_dir,
        environment=program_environment(settings, os.environ),
    )
    path = settings.data_dir / "supervisord.conf"
    tmp = path.with_suffix(f".{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(text)
    tmp.replace(path)
    return path


class _StopRequested(Exception):
    """Ctrl-C or SIGTERM arrived before supervisord was running."""


_STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)


def run_foreground(
    settings: Settings,
    *,
    services: Callable[[Settings], Settings],
    migrate: Callable[[Settings], None],
) -> int:
    """Start services, migrate, run every process type under supervisord until signalled.

    On Ctrl-C or SIGTERM supervisord stops the children first (each whole process group,
    killed after STOP_WAIT_S); then the embedded servers this call started are stopped.
    """
    data_dir = settings.data_dir
    data_dir.mkdir(parents=True, exist_ok=True)
    start_pg = settings.database_url is None and not _postgres_running(data_dir)
    start_redis = settings.redis_url is None and not _redis_running(data_dir)
    supervisor: subprocess.Popen[bytes] | None = None

    def on_signal(signum: int, _frame: FrameType | None) -> None:
        if supervisor is None:
            raise _StopRequested
        supervisor.send_signal(signal.SIGTERM)

    for sig in _STOP_SIGNALS:
        signal.signal(sig, on_signal)
    try:
        settings = services(settings)
        log.info("Running migrations.")
        migrate(settings)
        conf = write_conf(settings)
        log.info("Starting supervisord.", config=str(conf))
        signal.pthread_sigmask(signal.SIG_BLOCK, _STOP_SIGNALS)
        try:
            supervisor = subprocess.Popen(
                [sys.executable, "-m", "supervisor.supervisord", "-n", "-c", str(conf)],
                preexec_fn=_child_setup,  # tiny and async-signal-safe enough: no locks taken
            )
        finally:
            signal.pthread_sigmask(signal.SIG_UNBLOCK, _STOP_SIGNALS)
        code = supervisor.wait()
        log.info("supervisord exited; every process has stopped.", exit_code=code)
        return code
    except _StopRequested:
        log.info("Stopped before the processes were started.")
        return 0
    finally:
        for sig in _STOP_SIGNALS:
            signal.signal(sig, signal.SIG_DFL)
        if start_redis:
            stop_redis(data_dir)
        if start_pg:
            stop_postgres(data_dir)
        if start_pg or start_redis:
            log.info("Embedded servers stopped.")


def _child_setup() -> None:
    """In supervisord's process: take signals again, and get SIGTERM if `run` is killed."""
    signal.pthread_sigmask(signal.SIG_UNBLOCK, _STOP_SIGNALS)
    if sys.platform == "linux":
        pr_set_pdeathsig = 1
        ctypes.CDLL(None).prctl(pr_set_pdeathsig, int(signal.SIGTERM), 0, 0, 0)


def _postgres_running(data_dir: Path) -> bool:
    try:
        pid = int((data_dir / "postgres" / "postmaster.pid").read_text().split()[0])
        os.kill(pid, 0)
    except (FileNotFoundError, ValueError, IndexError, ProcessLookupError):
        return False
    except PermissionError:
        return True  # alive, owned by the unprivileged user pgserver runs it as
    return True


def _redis_running(data_dir: Path) -> bool:
    client = redis.Redis(unix_socket_path=str(redis_socket(data_dir)), socket_timeout=0.5)
    try:
        return bool(client.ping())
    except (redis.ConnectionError, redis.TimeoutError, OSError):
        return False
    finally:
        client.close()
