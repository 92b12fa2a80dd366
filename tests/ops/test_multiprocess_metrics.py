"""Metrics of a multi-process group are summed across its processes at scrape time."""

from __future__ import annotations

import os
import secrets
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from dramatiq import Message
from dramatiq.brokers.redis import RedisBroker

from runtime.metrics_exposition import MULTIPROC_ENV, start_metrics_server
from runtime.ports import free_port_block
from tests.ops.scraping import Samples, scrape

ROOT = Path(__file__).resolve().parents[2]

# Run by each child: count events and observe a histogram, as a worker process would.
CHILD = """
import sys
from runtime import metrics
count = int(sys.argv[1])
metrics.events_relayed_total.labels("transfer.completed").inc(count)
metrics.posting_batch_size.observe(count)
metrics.outbox_backlog.set(count * 10)
"""

# A process group's parent: enable the directory, then count, as `vaultcraft relay` would.
GROUP = """
import sys
from pathlib import Path
from runtime.metrics_exposition import enable_multiprocess_metrics
enable_multiprocess_metrics(Path(sys.argv[1]))
from runtime import metrics
metrics.pending_rescued_total.inc(int(sys.argv[2]))
"""


def _python(code: str, *args: str, env: dict[str, str] | None = None) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(code), *args],
        cwd=ROOT,
        env={**os.environ, **(env or {})},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _finish(proc: subprocess.Popen[str]) -> tuple[int, str]:
    _, err = proc.communicate(timeout=60)
    return proc.returncode, err


@pytest.fixture
def served(tmp_path: Path) -> Iterator[tuple[Path, int]]:
    """An exposition server over an empty multiprocess directory."""
    directory = tmp_path / "prometheus"
    directory.mkdir()
    server = start_metrics_server(0, multiprocess_dir=directory)
    yield directory, server.port
    server.close()


def test_counters_of_two_processes_are_summed(served: tuple[Path, int]) -> None:
    """Two real processes counting into one directory are exported as one total."""
    directory, port = served
    # Given two processes that count 3 and 4 events into the same directory, concurrently
    children = [_python(CHILD, n, env={MULTIPROC_ENV: str(directory)}) for n in ("3", "4")]
    for child in children:
        code, err = _finish(child)
        assert code == 0, err

    # When the group is scraped
    samples = scrape(port)

    # Then counters and histograms are summed, and the gauge takes the maximum
    relayed = ("vaultcraft_events_relayed_total", (("type", "transfer.completed"),))
    assert samples[relayed] == 7
    assert samples[("vaultcraft_posting_batch_size_count", ())] == 2
    assert samples[("vaultcraft_posting_batch_size_sum", ())] == 7
    assert samples[("vaultcraft_outbox_backlog", ())] == 40
    assert len(list(directory.glob("counter_*.db"))) == 2


def test_a_restarted_group_starts_from_zero(served: tuple[Path, int]) -> None:
    """Enabling the directory deletes the files an earlier run of the group left behind."""
    directory, port = served
    for count in ("5", "2"):
        code, err = _finish(_python(GROUP, str(directory), count))
        assert code == 0, err

    assert scrape(port)[("vaultcraft_pending_rescued_total", ())] == 2


def test_enabling_after_metrics_exist_is_refused(tmp_path: Path) -> None:
    """Metrics created before the directory was set would be missing, so that is an error."""
    code, err = _finish(
        _python(
            """
            import sys
            from pathlib import Path
            import runtime.metrics
            from runtime.metrics_exposition import enable_multiprocess_metrics
            enable_multiprocess_metrics(Path(sys.argv[1]))
            """,
            str(tmp_path / "late"),
        )
    )
    assert code != 0
    assert "imported before enable_multiprocess_metrics" in err


# How `vaultcraft relay` starts: its metrics first, then the code that counts.
RELAY = """
import sys, time
from runtime.metrics_exposition import start_group_metrics
server = start_group_metrics("relay")
from runtime import metrics
metrics.events_relayed_total.labels("transfer.completed").inc(9)
print(server.port, flush=True)
time.sleep(60)
"""


def test_relay_serves_its_group_on_the_second_port(tmp_path: Path) -> None:
    """`start_group_metrics("relay")` serves on VAULTCRAFT_METRICS_PORT + 1 from its own dir."""
    port = free_port_block(2) + 1  # the relay's, one above the base
    env = {"VAULTCRAFT_METRICS_PORT": str(port - 1), "VAULTCRAFT_DATA_DIR": str(tmp_path)}
    relay = _python(RELAY, env=env)
    try:
        assert relay.stdout is not None
        assert int(relay.stdout.readline()) == port
        samples = scrape(port)
        assert samples[("vaultcraft_events_relayed_total", (("type", "transfer.completed"),))] == 9
        assert list((tmp_path / "prometheus" / f"relay-{port}").glob("counter_*.db"))
    finally:
        relay.kill()
        relay.communicate()


# How `vaultcraft worker` starts its group: enable the directory, then hand over to Dramatiq.
WORKER_GROUP = """
import sys
from pathlib import Path
from runtime.metrics_exposition import enable_multiprocess_metrics
enable_multiprocess_metrics(Path(sys.argv[1]))
from dramatiq.cli import main
sys.argv = ["dramatiq", "tests.ops.sample_actors", "--processes", "2", "--threads", "1",
            "--queues", sys.argv[2]]
sys.exit(main())
"""


def test_dramatiq_worker_group_serves_metrics_of_all_its_processes(
    redis_url: str, tmp_path: Path
) -> None:
    """Messages handled by two Dramatiq worker processes show up on the group's one port."""
    # Given a worker group of two processes with its metrics port and directory
    queue, port, directory = f"ops-{secrets.token_hex(4)}", free_port_block(1), tmp_path / "worker"
    env = {
        "REDIS_URL": redis_url,
        "VAULTCRAFT_METRICS_PORT": str(port),
        "VAULTCRAFT_DATA_DIR": str(tmp_path),
        "VAULTCRAFT_OPS_TEST_QUEUE": queue,
    }
    group = subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(WORKER_GROUP), str(directory), queue],
        cwd=ROOT,
        env={**os.environ, **env},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    broker = RedisBroker(url=redis_url)
    try:
        # When 20 messages are enqueued for it
        for _ in range(20):
            broker.enqueue(
                Message(queue_name=queue, actor_name="record_event", args=(), kwargs={}, options={})
            )
        # Then the group's port soon reports all of them, from every worker process
        handled = ("vaultcraft_worker_messages_total", _labels(queue, "record_event", "ok"))
        relayed = ("vaultcraft_events_relayed_total", (("type", "ops.test"),))
        samples = _wait_for(port, handled, 20, group)
        assert samples[relayed] == 20
        duration = (
            "vaultcraft_worker_message_duration_seconds_count",
            _labels(queue, "record_event"),
        )
        assert samples[duration] == 20
        assert len(list(directory.glob("counter_*.db"))) >= 2
    finally:
        group.send_signal(signal.SIGTERM)
        try:
            group.communicate(timeout=30)
        except subprocess.TimeoutExpired:
            group.kill()
            group.communicate()
        broker.flush(queue)
        broker.close()


def _labels(queue: str, actor: str, outcome: str | None = None) -> tuple[tuple[str, str], ...]:
    labels = {"queue": queue, "actor": actor} | ({"outcome": outcome} if outcome else {})
    return tuple(sorted(labels.items()))


def _wait_for(
    port: int,
    key: tuple[str, tuple[tuple[str, str], ...]],
    expected: float,
    group: subprocess.Popen[str],
) -> Samples:
    deadline = time.monotonic() + 60
    samples: Samples = {}
    while time.monotonic() < deadline:
        assert group.poll() is None, group.communicate()[1]
        try:
            samples = scrape(port)
        except OSError:
            samples = {}
        if samples.get(key) == expected:
            return samples
        time.sleep(0.2)
    raise AssertionError(f"{key} never reached {expected}; last scrape: {samples.get(key)}")
