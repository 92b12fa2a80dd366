"""The README's client example runs, as printed, against the real system."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from tests.client.conftest import unique_email
from tests.support.stack import Stack

README = (Path(__file__).resolve().parents[2] / "README.md").read_text()


def test_the_readme_client_example_runs(
    stack: Stack, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """Sign up, deposit, wait, a refused amount and a listing, exactly as documented."""
    section = README.split("## Python client", 1)[1].split("\n## ", 1)[0]
    [example] = re.findall(r"```python\n(.*?)```", section, flags=re.S)
    monkeypatch.setenv("VAULTCRAFT_URL", stack.base_url)
    source = example.replace("ada@example.com", unique_email("ada"))

    exec(compile(source, "README.md", "exec"), {})  # noqa: S102 - our own README

    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == "COMPLETED"
    assert lines[1].startswith("422 invalid_amount [{'field': 'amount'")
    assert len(lines) == 3 and lines[2].endswith(" 100.00 COMPLETED")
