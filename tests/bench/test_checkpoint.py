"""Each measured stage of the benchmark starts after a checkpoint, where the role may run one."""

from __future__ import annotations

from sqlalchemy import create_engine, text

from bench.scenarios import checkpoint
from runtime.settings import service_url


def _last_checkpoint(url: str) -> str:
    """Where the server's latest checkpoint record is (moved by every forced checkpoint)."""
    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            return str(
                conn.execute(
                    text("SELECT checkpoint_lsn FROM pg_control_checkpoint()")
                ).scalar_one()
            )
    finally:
        engine.dispose()


def test_a_checkpoint_runs_and_is_timed(database_url: str) -> None:
    before = _last_checkpoint(database_url)
    seconds = checkpoint(database_url)
    assert seconds is not None and 0 <= seconds < 60
    assert _last_checkpoint(database_url) != before


def test_a_role_that_may_not_checkpoint_gets_none(database_url: str) -> None:
    """The service role (what a managed database's application user is like) may not."""
    assert checkpoint(service_url(database_url)) is None
