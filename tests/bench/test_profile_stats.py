"""The profiler's arithmetic: py-spy's collapsed stacks and CPU accounting per role."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

from sqlalchemy import Engine, text

from bench.profile_stats import cpu_by_group, database_size, hot_frames, read_raw_stacks

RAW = """\
process 7:"python -m dramatiq";thread (0x1);run (worker.py:10);post_pending (posting.py:60);wait (connection.py:5) 30
process 7:"python -m dramatiq";thread (0x1);run (worker.py:10);post_pending (posting.py:61);plan (posting.py:9) 10
process 7:"python -m dramatiq";thread (0x2);run (worker.py:10);get (queue.py:3) 60
"""


def test_raw_stacks_are_read_root_first_with_their_counts(tmp_path: Path) -> None:
    path = tmp_path / "worker.txt"
    path.write_text(RAW)
    stacks = read_raw_stacks(path)
    assert sum(stacks.values()) == 100
    assert read_raw_stacks(tmp_path / "missing.txt") == Counter()


def test_hot_frames_count_only_what_runs_under_the_focus(tmp_path: Path) -> None:
    """40 of 100 samples are inside post_pending: 0.4 thread-seconds at 100 Hz, 75% waiting."""
    path = tmp_path / "worker.txt"
    path.write_text(RAW)
    found = hot_frames(read_raw_stacks(path), "post_pending", rate=100)
    assert found["samples"] == 100
    assert found["focus_thread_s"] == 0.4
    assert dict(found["inclusive_pct"])["post_pending (posting.py)"] == 100.0
    assert dict(found["self_pct"]) == {"wait (connection.py)": 75.0, "plan (posting.py)": 25.0}


def test_cpu_is_charged_to_roles_and_new_processes_count_from_zero() -> None:
    before = {1: ("python", 10.0), 2: ("postgres", 5.0)}
    after = {1: ("python", 12.5), 2: ("postgres", 6.0), 3: ("postgres", 0.5), 4: ("idle", 0.0)}
    assert cpu_by_group(before, after, {1: "gateway"}) == {"gateway": 2.5, "postgres": 1.5}


def test_the_database_size_grows_with_what_is_stored(engine: Engine, database_url: str) -> None:
    """`database_size` reads the database's files: a table of a few megabytes shows (a
    temporary one, which no other test can see)."""
    before = database_size(database_url)
    with engine.connect() as conn:
        conn.execute(
            text(
                "CREATE TEMPORARY TABLE size_probe AS"
                " SELECT repeat('x', 200) AS v FROM generate_series(1, 20000)"
            )
        )
        grown = database_size(database_url) - before
        conn.execute(text("DROP TABLE size_probe"))
    assert 20000 * 200 <= grown <= 3 * 20000 * 260
