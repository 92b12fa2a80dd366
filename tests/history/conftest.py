from __future__ import annotations

from tests.support.fixtures import api_settings, client  # noqa: F401
