"""The README keeps up with the code: every setting, every command, the operations guide."""

from __future__ import annotations

import re
from pathlib import Path

from vaultcraft import cli

ROOT = Path(__file__).resolve().parents[2]
README = (ROOT / "README.md").read_text()


def _configuration_table() -> set[str]:
    section = README.split("## Configuration", 1)[1].split("\n## ", 1)[0]
    return set(re.findall(r"^\| `([A-Z0-9_]+)` \|", section, flags=re.M))


def test_every_environment_variable_the_settings_read_is_in_the_configuration_table() -> None:
    source = (ROOT / "runtime" / "settings.py").read_text()
    read = set(re.findall(r"""env(?:\.get\(|, )["']([A-Z0-9_]+)["']""", source))

    assert {"DATABASE_URL", "VAULTCRAFT_JWT_SECRET", "VAULTCRAFT_RESCUE_INTERVAL_S"} <= read
    assert read - _configuration_table() == set()


def test_every_command_is_named_in_the_readme() -> None:
    for name in cli.COMMANDS:
        assert f"vaultcraft {name}" in README, name


def test_operations_section_links_the_guide_and_draws_the_processes() -> None:
    section = README.split("## Operations", 1)[1].split("\n## ", 1)[0]

    assert "(docs/operations.md)" in section
    assert "```mermaid" in section and "flowchart" in section
    assert "Prometheus :9090 ── scrape" in section  # the plain-text picture
    assert "docker compose up" in section
    for metric in ("vaultcraft_queue_depth", "vaultcraft_transfers_finished_total"):
        assert metric in section
