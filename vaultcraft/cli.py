"""The `vaultcraft` command: every process type and operator task behind one entry point.

A subcommand is a function registered with `@command`; it receives the parsed arguments
and the resolved Settings. Modules that only some commands need are imported inside the
command, so `vaultcraft --help` and `vaultcraft migrate` never load the gateway or workers.

Adding a command takes a few lines:

    @command("verify", "Check the ledger now.", arg("--require-final", action="store_true"))
    def _verify(args: argparse.Namespace, settings: Settings) -> int | None:
        from vaultcraft.operator_tasks import verify
        return verify(settings, require_final=args.require_final)
"""

from __future__ import annotations

import argparse
import dataclasses
import importlib.metadata
import json
import os
import shlex
import sys
import uuid
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import structlog

from runtime import embedded
from runtime.embedded import ensure_services
from runtime.logs import configure_logging
from runtime.settings import Settings

Handler = Callable[[argparse.Namespace, Settings], int | None]

NO_DATABASE = 3
"""Exit code of a command that reads the ledger when there is no database to read."""


@dataclass(frozen=True)
class Argument:
    flags: tuple[str, ...]
    options: dict[str, Any]


@dataclass(frozen=True)
class Command:
    name: str
    help: str
    handler: Handler
    arguments: tuple[Argument, ...]
    services: bool
    ledger: bool


COMMANDS: dict[str, Command] = {}


def arg(*flags: str, **options: Any) -> Argument:
    """One `add_argument` call, kept as data until the parser is built."""
    return Argument(flags, options)


def command(
    name: str, help: str, *arguments: Argument, services: bool = True, ledger: bool = False
) -> Callable[[Handler], Handler]:
    """Register a subcommand. With `services`, embedded servers start if no URL is set.

    A `ledger` command works on an existing ledger: without `DATABASE_URL` and without an
    embedded database in the data dir it refuses (exit `NO_DATABASE`) instead of creating
    an empty one, and it stops again the embedded servers it had to start.
    """

    def register(handler: Handler) -> Handler:
        COMMANDS[name] = Command(name, help, handler, arguments, services, ledger)
        return handler

    return register


def installed_version() -> str:
    """The version of the installed `vaultcraft` distribution (pyproject.toml's)."""
    return importlib.metadata.version("vaultcraft")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="vaultcraft", description="VaultCraft: multi-tenant money movement and ledger."
    )
    parser.add_argument("--version", action="version", version=f"vaultcraft {installed_version()}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for cmd in COMMANDS.values():
        sub = subparsers.add_parser(cmd.name, help=cmd.help, description=cmd.help)
        for argument in cmd.arguments:
            sub.add_argument(*argument.flags, **argument.options)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    cmd = COMMANDS[args.command]
    settings = Settings.from_env()
    configure_logging(cmd.name, settings)
    if (
        cmd.ledger
        and not settings.database_url
        and not embedded.has_postgres_data(settings.data_dir)
    ):
        print(
            f"vaultcraft {cmd.name}: no database to read. Set DATABASE_URL, or run from the"
            " directory holding .vaultcraft/ (or set VAULTCRAFT_DATA_DIR to it); nothing was"
            f" started. Looked in {settings.data_dir}.",
            file=sys.stderr,
        )
        return NO_DATABASE
    try:
        if not cmd.services:
            return cmd.handler(args, settings) or 0
        with services_for(settings, one_shot=cmd.ledger) as ready:
            return cmd.handler(args, ready) or 0
    except Exception:
        # One structured event (with the traceback) instead of a bare stderr dump.
        structlog.get_logger("vaultcraft.cli").exception("Command failed.", command=cmd.name)
        return 1


def with_services(settings: Settings) -> Settings:
    """Fill in the service URLs (starting embedded servers if unset) for this process tree."""
    urls = ensure_services(settings.data_dir, settings.database_url, settings.redis_url)
    os.environ["DATABASE_URL"] = urls.database_url
    os.environ["REDIS_URL"] = urls.redis_url
    return dataclasses.replace(settings, database_url=urls.database_url, redis_url=urls.redis_url)


@contextmanager
def services_for(settings: Settings, *, one_shot: bool) -> Iterator[Settings]:
    """The settings with service URLs; a `one_shot` command stops what it had to start."""
    data_dir = settings.data_dir
    postgres_up = bool(settings.database_url) or embedded.postgres_running(data_dir)
    redis_up = bool(settings.redis_url) or embedded.redis_running(data_dir)
    try:
        yield with_services(settings)
    finally:
        if one_shot and not redis_up:
            embedded.stop_redis(data_dir)
        if one_shot and not postgres_up:
            embedded.stop_postgres(data_dir)


def upgrade_database(settings: Settings) -> None:
    """Bring the schema to the newest migration (Alembic takes an advisory lock first)."""
    from alembic import command as alembic_command
    from alembic.config import Config

    import migrations

    config = Config()
    config.set_main_option("script_location", str(Path(migrations.__file__).parent))
    config.set_main_option("sqlalchemy.url", settings.owner_sqlalchemy_url.replace("%", "%%"))
    alembic_command.upgrade(config, "head")


@command("run", "Run every process type in the foreground until Ctrl-C.", services=False)
def _run(args: argparse.Namespace, settings: Settings) -> int | None:
    from vaultcraft.supervise import run_foreground

    return run_foreground(settings, migrate=upgrade_database, services=with_services)


@command("migrate", "Upgrade the database schema to the newest migration.")
def _migrate(args: argparse.Namespace, settings: Settings) -> int | None:
    upgrade_database(settings)
    return 0


@command("services", "Start the embedded servers if needed and print their URLs.")
def _services(args: argparse.Namespace, settings: Settings) -> int | None:
    print(
        f"export DATABASE_URL={shlex.quote(settings.database_url or '')}"
        f" REDIS_URL={shlex.quote(settings.redis_url or '')}"
    )
    return 0


@command("gateway", "Serve the HTTP API.")
def _gateway(args: argparse.Namespace, settings: Settings) -> int | None:
    from gateway.server import serve

    serve(settings)
    return 0


WORKER_POLL_MS = 1000
"""Longest an idle consumer waits before fetching again. New messages wake it at once
(`messaging.doorbell`); the timeout bounds how long shutdown, delayed retries and a lost
wake-up wait."""
WORKER_SHUTDOWN_MS = 8000
"""Time in-flight messages get on shutdown; below supervise.STOP_WAIT_S."""


@command(
    "worker",
    "Run the Dramatiq workers (posting, webhooks, jobs).",
    arg("--processes", type=int, default=2, help="worker processes (default: 2)"),
    arg("--threads", type=int, default=8, help="threads per process (default: 8)"),
    arg("--queues", nargs="+", metavar="QUEUE", help="queues to consume (default: all)"),
    arg(
        "--metrics-group",
        choices=("worker", "webhooks"),
        default="worker",
        help="whose metrics port and directory this group uses (default: worker)",
    ),
)
def _worker(args: argparse.Namespace, settings: Settings) -> int | None:
    from runtime.metrics_exposition import (
        GROUP_ENV,
        enable_multiprocess_metrics,
        multiprocess_dir_for,
    )

    enable_multiprocess_metrics(multiprocess_dir_for(settings, args.metrics_group))
    os.environ[GROUP_ENV] = args.metrics_group
    argv = [sys.executable, "-m", "vaultcraft.worker_group", "workers.bootstrap"]
    argv += ["vaultcraft.worker_logging", "--skip-logging"]
    argv += ["--processes", str(args.processes), "--threads", str(args.threads)]
    argv += ["--worker-shutdown-timeout", str(WORKER_SHUTDOWN_MS)]
    if args.queues:
        argv += ["--queues", *args.queues]
    # Dramatiq 2 reads the idle poll interval from the environment, not a flag.
    env = {**os.environ, "dramatiq_worker_timeout": str(WORKER_POLL_MS)}
    os.execve(sys.executable, argv, env)  # noqa: S606 - fixed argv, our own interpreter


@command("relay", "Relay outbox events to the event stream and webhook queue.")
def _relay(args: argparse.Namespace, settings: Settings) -> int | None:
    from workers.relay import main as relay_main

    relay_main(settings)
    return 0


@command("scheduler", "Run periodic jobs: pending rescue, reconciliation, settlement.")
def _scheduler(args: argparse.Namespace, settings: Settings) -> int | None:
    from workers.scheduler import main as scheduler_main

    scheduler_main(settings)
    return 0


@command(
    "settle",
    "Settle cross-organization positions now and print what was written as JSON.",
    arg("--organization", metavar="ID", type=uuid.UUID, help="only this organization's pairs"),
    ledger=True,
)
def _settle(args: argparse.Namespace, settings: Settings) -> int | None:
    from sqlalchemy import create_engine

    from workers.settlement import settle_now

    engine = create_engine(settings.sqlalchemy_url, pool_size=1)
    try:
        written = settle_now(engine, args.organization)
    finally:
        engine.dispose()
    print(json.dumps({"settlements": [s.as_json() for s in written]}))
    return 0


@command(
    "create-org",
    "Create an organization with its ADMIN user and SYSTEM wallet, as signup does.",
    arg("--name", required=True, help="the organization's name"),
    arg("--email", required=True, help="the ADMIN's email (their login)"),
    arg(
        "--password",
        required=True,
        help="the ADMIN's password (10 characters or more); `-` reads it from stdin,"
        " keeping it out of the process list and shell history",
    ),
    arg("--full-name", default="Administrator", help="the ADMIN's name"),
    arg("--currency", default="INR", help="default currency and the SYSTEM wallet's (INR)"),
)
def _create_org(args: argparse.Namespace, settings: Settings) -> int | None:
    from vaultcraft.operator_tasks import create_org

    return create_org(
        settings,
        name=args.name,
        email=args.email,
        password=_secret_argument(args.password),
        full_name=args.full_name,
        currency=args.currency,
    )


def _secret_argument(value: str) -> str:
    """The value itself, or with `-` the first line of stdin."""
    return sys.stdin.readline().rstrip("\n") if value == STDIN_ARGUMENT else value


STDIN_ARGUMENT = "-"


@command(
    "reconcile",
    "Reconcile the ledger now and print what was found; exit 1 on drift, 2 if the run failed.",
    arg("--full", action="store_true", help="read every entry (default: only what is new)"),
    ledger=True,
)
def _reconcile(args: argparse.Namespace, settings: Settings) -> int | None:
    from vaultcraft.operator_tasks import reconcile

    return reconcile(settings, full=args.full)


@command(
    "verify",
    "Check the ledger's invariants over the whole database; exit 1 on any violation,"
    " 3 when there is no database.",
    arg("--require-final", action="store_true", help="also fail on transfers still PENDING"),
    ledger=True,
)
def _verify(args: argparse.Namespace, settings: Settings) -> int | None:
    from vaultcraft.operator_tasks import verify

    return verify(settings, require_final=args.require_final)


@command(
    "audit-key",
    "Print a new audit signing key and its public key (`new`), or the public key of the"
    " signing key in use (`public`: the value to retire it with).",
    arg("which", choices=("new", "public")),
    services=False,
)
def _audit_key(args: argparse.Namespace, settings: Settings) -> int | None:
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    from runtime.audit_keys import encode_private, encode_public, signing_key

    if args.which == "public":
        print(encode_public(signing_key(settings).public_key()))
        return 0
    key = Ed25519PrivateKey.generate()
    print(f"VAULTCRAFT_AUDIT_SIGNING_KEY={encode_private(key)}")
    print(f"VAULTCRAFT_AUDIT_PUBLIC_KEY={encode_public(key.public_key())}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
