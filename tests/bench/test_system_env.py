"""The system under benchmark is not throttled out of its own sign-ups."""

from __future__ import annotations

from pathlib import Path

import pytest

from bench.system import BENCH_SIGNUP_LIMIT, System
from runtime.settings import Settings


def _system(tmp_path: Path) -> System:
    return System("postgresql://bench@127.0.0.1/bench", "redis://127.0.0.1/3", tmp_path)


def test_many_runs_in_a_row_can_sign_up(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("VAULTCRAFT_SIGNUP_LIMIT", raising=False)
    settings = Settings.from_env(_system(tmp_path).env())
    assert settings.signup_limit == BENCH_SIGNUP_LIMIT


def test_a_limit_given_to_the_benchmark_is_kept(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("VAULTCRAFT_SIGNUP_LIMIT", "3")
    assert Settings.from_env(_system(tmp_path).env()).signup_limit == 3
