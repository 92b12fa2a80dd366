"""Settings read from the environment: bounds are enforced at start, with the name at fault."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy.engine import make_url

from runtime.settings import (
    SERVICE_ROLE,
    SERVICE_SESSION_OPTIONS,
    Settings,
    service_url,
    to_psycopg_url,
)


def _settings(tmp_path: Path, **env: str) -> Settings:
    return Settings.from_env({"VAULTCRAFT_DATA_DIR": str(tmp_path), **env})


def test_the_fair_share_defaults_to_100_and_is_configurable(tmp_path: Path) -> None:
    assert _settings(tmp_path).fair_share == 100
    assert _settings(tmp_path, VAULTCRAFT_FAIR_SHARE="25").fair_share == 25


@pytest.mark.parametrize("raw", ["0", "-5", "10001", "many"])
def test_a_fair_share_out_of_bounds_stops_the_process(tmp_path: Path, raw: str) -> None:
    with pytest.raises(SystemExit, match="VAULTCRAFT_FAIR_SHARE"):
        _settings(tmp_path, VAULTCRAFT_FAIR_SHARE=raw)


PACING = [
    ("VAULTCRAFT_POSTING_KICK_INTERVAL_MS", "posting_kick_interval_ms", 15, 1000),
    ("VAULTCRAFT_POSTING_BUSY_INTERVAL_MS", "posting_busy_interval_ms", 80, 1000),
    ("VAULTCRAFT_INTAKE_GATHER_MS", "intake_gather_ms", 2, 100),
    ("VAULTCRAFT_OUTBOX_REST_MS", "outbox_rest_ms", 20, 1000),
]
"""The waits that trade a few milliseconds for larger commits: name, field, default, most."""


@pytest.mark.parametrize(("name", "field", "default", "most"), PACING)
def test_each_pacing_wait_has_its_default_and_may_be_turned_off(
    tmp_path: Path, name: str, field: str, default: int, most: int
) -> None:
    assert getattr(_settings(tmp_path), field) == default
    assert getattr(_settings(tmp_path, **{name: "0"}), field) == 0
    assert getattr(_settings(tmp_path, **{name: str(most)}), field) == most


@pytest.mark.parametrize(("name", "field", "default", "most"), PACING)
@pytest.mark.parametrize("beyond", ["-1", "past the most", "2.5"])
def test_a_pacing_wait_out_of_bounds_stops_the_process(
    tmp_path: Path, name: str, field: str, default: int, most: int, beyond: str
) -> None:
    raw = str(most + 1) if beyond == "past the most" else beyond
    with pytest.raises(SystemExit, match=name):
        _settings(tmp_path, **{name: raw})


def test_service_connections_run_without_jit() -> None:
    url = service_url("postgresql://owner:secret@db.example:5432/ledger")
    parsed = make_url(url)
    assert (parsed.username, parsed.password) == (SERVICE_ROLE, None)
    assert parsed.query["options"] == SERVICE_SESSION_OPTIONS
    assert service_url(url, url) == url, "options are added once"


def test_a_given_service_url_keeps_its_own_options_and_parameters() -> None:
    given = "postgresql://app:pw@db/ledger?options=-c%20statement_timeout%3D5s&sslmode=require"
    libpq = to_psycopg_url(service_url("postgresql://owner@db/ledger", given))
    assert libpq == (
        "postgresql://app:pw@db/ledger?options=-c%20statement_timeout%3D5s%20-c%20jit%3Doff"
        "&sslmode=require"
    )


def test_libpq_urls_quote_spaces_as_libpq_reads_them() -> None:
    assert to_psycopg_url("postgresql+psycopg://u@h/d?options=-c+jit%3Doff") == (
        "postgresql://u@h/d?options=-c%20jit%3Doff"
    )
    assert to_psycopg_url("postgres://u@h:5433/d") == "postgresql://u@h:5433/d"
