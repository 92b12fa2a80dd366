"""Fixtures shared by the database integration tests."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.support.databases import create_empty_database, drop_database


@pytest.fixture
def unmigrated_url(database_url: str) -> Iterator[str]:
    """An empty database of its own on the test server, dropped afterwards."""
    url = create_empty_database(database_url, "vaultcraft_unmigrated")
    yield url
    drop_database(url)
