"""Webhook deliveries run in their own worker process, so slow receivers never hold up posting."""

from __future__ import annotations

import shlex
from pathlib import Path

from runtime.settings import Settings
from vaultcraft.cli import build_parser
from vaultcraft.supervise import PROCESS_TYPES
from workers.relay import loops


def _queues(command: str) -> list[str] | None:
    argv = shlex.split(command)
    if argv[:2] != ["vaultcraft", "worker"]:
        return None
    queues: list[str] | None = build_parser().parse_args(argv[1:]).queues
    return queues


def test_posting_and_webhook_workers_are_separate_process_types() -> None:
    queues = {p.name: _queues(p.command) for p in PROCESS_TYPES}

    assert queues["webhooks"] == ["webhooks"]
    assert queues["worker"] is not None and "webhooks" not in queues["worker"]
    assert "posting" in queues["worker"]


def test_the_relay_process_runs_the_outbox_relay_and_the_audit_sealer(tmp_path: Path) -> None:
    settings = Settings.from_env(  # given servers: naming the loops starts no embedded one
        {
            "VAULTCRAFT_DATA_DIR": str(tmp_path),
            "VAULTCRAFT_JWT_SECRET": "k",
            "DATABASE_URL": "postgresql://nobody@127.0.0.1:1/none",
            "REDIS_URL": "redis://127.0.0.1:1/0",
        }
    )
    names = [name for name, _loop in loops(settings)]

    assert {"outbox", "audit-seal", "dispatch"} <= set(names)
