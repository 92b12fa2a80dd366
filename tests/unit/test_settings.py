"""Settings read from the environment: bounds are enforced at start, with the name at fault."""

from __future__ import annotations

from pathlib import Path

import pytest

from runtime.settings import Settings


def _settings(tmp_path: Path, **env: str) -> Settings:
    return Settings.from_env({"VAULTCRAFT_DATA_DIR": str(tmp_path), **env})


def test_the_fair_share_defaults_to_100_and_is_configurable(tmp_path: Path) -> None:
    assert _settings(tmp_path).fair_share == 100
    assert _settings(tmp_path, VAULTCRAFT_FAIR_SHARE="25").fair_share == 25


@pytest.mark.parametrize("raw", ["0", "-5", "10001", "many"])
def test_a_fair_share_out_of_bounds_stops_the_process(tmp_path: Path, raw: str) -> None:
    with pytest.raises(SystemExit, match="VAULTCRAFT_FAIR_SHARE"):
        _settings(tmp_path, VAULTCRAFT_FAIR_SHARE=raw)
