"""The intake writer's connections: the service's own server settings, and a short wait for
rows that other transactions hold."""

from __future__ import annotations

from sqlalchemy import make_url

from ledger_core.persistence.transfers.group_intake import with_lock_timeout
from runtime.settings import service_url


def test_the_lock_timeout_joins_the_server_settings_the_url_gives() -> None:
    url = make_url(service_url("postgresql://owner@db.example:5432/ledger"))
    options = with_lock_timeout(url, 200).query["options"]
    assert options == "-c jit=off -c lock_timeout=200"


def test_a_url_without_server_settings_gets_the_lock_timeout_alone() -> None:
    url = make_url("postgresql+psycopg://app@db.example/ledger?sslmode=require")
    changed = with_lock_timeout(url, 150)
    assert changed.query == {"sslmode": "require", "options": "-c lock_timeout=150"}
    assert changed.render_as_string(hide_password=False).startswith(
        "postgresql+psycopg://app@db.example/ledger?"
    )
