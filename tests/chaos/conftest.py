"""A chaos run owns its PostgreSQL server: an embedded one in its own directory, so the
run can stop and start it while the rest of the suite's database stays untouched."""

from __future__ import annotations

import os
import secrets
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from runtime.embedded import ensure_postgres, stop_postgres
from tests.support.databases import create_migrated_database, private_postgres_dir


@dataclass(frozen=True)
class OwnedPostgres:
    data_dir: Path
    database_url: str


@pytest.fixture
def chaos_seed() -> int:
    """`VAULTCRAFT_CHAOS_SEED` to replay a run, else a fresh one (printed by the test)."""
    given = os.environ.get("VAULTCRAFT_CHAOS_SEED")
    return int(given) if given else secrets.randbelow(2**32)


@pytest.fixture
def owned_postgres(test_data_dir: Path) -> Iterator[OwnedPostgres]:
    data_dir = private_postgres_dir(test_data_dir / "chaos")
    try:
        url = create_migrated_database(ensure_postgres(data_dir), prefix="vaultcraft_chaos")
        yield OwnedPostgres(data_dir, url)
    finally:
        stop_postgres(data_dir)
        shutil.rmtree(data_dir, ignore_errors=True)
