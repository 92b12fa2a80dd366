"""Prometheus metrics for process groups that run more than one process.

`vaultcraft worker` runs several Dramatiq worker processes, each with its own copy of every
counter. prometheus-client's multiprocess mode has each process write its values to
memory-mapped files in one directory (`PROMETHEUS_MULTIPROC_DIR`), and an exposition server
sums those files at scrape time. prometheus-client decides where a metric keeps its value
when the metric is created, so a process group must call `enable_multiprocess_metrics`
before anything imports `runtime.metrics`; this module never imports it at load time
for that reason.

Each group has its own directory (worker, relay, scheduler) and its own port, counted from
`VAULTCRAFT_METRICS_PORT` by `GROUP_PORT_OFFSETS`: worker +0, relay +1, scheduler +2,
webhook workers +3.
The gateway is one process and serves `/metrics` on its HTTP port instead.
"""

from __future__ import annotations

import logging
import os
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from threading import Thread
from typing import Any
from wsgiref.simple_server import WSGIServer

import dramatiq
from dramatiq.broker import MessageProxy
from dramatiq.common import q_name
from dramatiq.middleware import Middleware
from prometheus_client import CollectorRegistry, values
from prometheus_client.multiprocess import MultiProcessCollector, mark_process_dead

from runtime.metrics_http import serve_metrics
from runtime.settings import Settings

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"

#: Metrics port of each process group, as an offset from VAULTCRAFT_METRICS_PORT.
GROUP_PORT_OFFSETS: dict[str, int] = {"worker": 0, "relay": 1, "scheduler": 2, "webhooks": 3}
GROUP_ENV = "VAULTCRAFT_METRICS_GROUP"
"""Which worker group a Dramatiq process tree belongs to (set by `vaultcraft worker`)."""

logger = logging.getLogger(__name__)


def multiprocess_dir_for(settings: Settings, group: str) -> Path:
    """The directory a process group shares its metric files in, under the data dir.

    Named after the group and its port: two worker groups on one machine (say, one for
    webhooks only) need different ports anyway, and so never clean each other's files.
    """
    return settings.data_dir / "prometheus" / f"{group}-{metrics_port_for(settings, group)}"


def metrics_port_for(settings: Settings, group: str) -> int:
    return settings.metrics_port + GROUP_PORT_OFFSETS[group]


def enable_multiprocess_metrics(multiprocess_dir: Path) -> Path:
    """Make every metric this process (and its children) creates live in `multiprocess_dir`.

    Files left by an earlier run of the group are deleted first, or their counts would be
    added to this run's. Call it first thing in the group's parent process: once
    `runtime.metrics` is imported its metrics already hold their values elsewhere, and
    this raises rather than export silently incomplete numbers.
    """
    multiprocess_dir = multiprocess_dir.resolve()
    if "runtime.metrics" in sys.modules:
        if os.environ.get(MULTIPROC_ENV) == str(multiprocess_dir):
            return multiprocess_dir  # already enabled for this process; keep its live files
        raise RuntimeError(
            "runtime.metrics was imported before enable_multiprocess_metrics(); "
            "call it first thing in the process"
        )
    multiprocess_dir.mkdir(parents=True, exist_ok=True)
    for stale in multiprocess_dir.glob("*.db"):
        stale.unlink()
    os.environ[MULTIPROC_ENV] = str(multiprocess_dir)
    # prometheus_client picks its value class when first imported; pick again now that
    # the directory is known (nothing of ours has created a metric yet, checked above).
    values.ValueClass = values.get_value_class()  # type: ignore[no-untyped-call]
    return multiprocess_dir


@dataclass
class MetricsServer:
    """A running exposition server; `port` is the bound port (useful when asked for 0)."""

    httpd: WSGIServer
    thread: Thread

    @property
    def port(self) -> int:
        return int(self.httpd.server_port)

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


def start_metrics_server(
    port: int, *, multiprocess_dir: Path, host: str = "127.0.0.1", token: str = ""
) -> MetricsServer:
    """Serve the summed metrics of every process writing to `multiprocess_dir`.

    Runs on a daemon thread and answers any path (Prometheus scrapes `/metrics`), to the
    clients `runtime.metrics_access` allows with `token` (VAULTCRAFT_METRICS_TOKEN).
    """
    registry = CollectorRegistry()
    MultiProcessCollector(registry, path=str(multiprocess_dir))  # type: ignore[no-untyped-call]
    httpd, thread = serve_metrics(port, host, registry, token)
    logger.info("Serving metrics of %s on %s:%d.", multiprocess_dir, host, httpd.server_port)
    return MetricsServer(httpd=httpd, thread=thread)


def start_group_metrics(group: str, settings: Settings | None = None) -> MetricsServer | None:
    """Enable multiprocess metrics for a single-process group and serve them on its port.

    For `vaultcraft relay` and `vaultcraft scheduler`: call before importing the modules
    that define or use metrics. A port already taken is logged as an error and None is
    returned: the process goes on with its real work (relaying, scheduling) unscraped,
    rather than crash-looping under its supervisor.
    """
    settings = settings or Settings.from_env()
    directory = enable_multiprocess_metrics(multiprocess_dir_for(settings, group))
    port = metrics_port_for(settings, group)
    try:
        return start_metrics_server(
            port, multiprocess_dir=directory, host=settings.http_host, token=settings.metrics_token
        )
    except OSError as exc:
        logger.error(
            "Cannot serve the %s metrics on %s:%d (%s); carrying on without them.",
            group,
            settings.http_host,
            port,
            exc,
        )
        return None


def serve_worker_metrics() -> int:
    """Dramatiq fork function: serve the worker group's metrics until the group stops.

    Dramatiq starts it in its own process once the worker processes are up; the port is
    `VAULTCRAFT_METRICS_PORT` and the directory the one the parent enabled.
    """
    directory = os.environ.get(MULTIPROC_ENV)
    if not directory:
        logger.error("%s is not set, so worker metrics cannot be served.", MULTIPROC_ENV)
        return 1
    settings = Settings.from_env()
    port = metrics_port_for(settings, os.environ.get(GROUP_ENV, "worker"))
    try:
        server = start_metrics_server(
            port,
            multiprocess_dir=Path(directory),
            host=settings.http_host,
            token=settings.metrics_token,
        )
    except OSError as exc:
        # Only this fork ends: Dramatiq keeps the worker processes running without it.
        logger.error(
            "Cannot serve the worker metrics on %s:%d (%s); workers carry on without them.",
            settings.http_host,
            port,
            exc,
        )
        return 1
    server.thread.join()
    return 0


class WorkerMetrics(Middleware):
    """Counts and times every message a worker handles, and serves the group's metrics.

    The exposition server is offered as a Dramatiq fork only when the worker group runs in
    multiprocess mode; otherwise each process's numbers would be its own and misleading.
    """

    def __init__(self) -> None:
        self._started: dict[str, float] = {}

    @property
    def forks(self) -> list[Callable[[], int]]:
        return [serve_worker_metrics] if os.environ.get(MULTIPROC_ENV) else []

    def before_process_message(self, broker: dramatiq.Broker, message: MessageProxy) -> None:
        self._started[message.message_id] = time.perf_counter()

    def after_process_message(
        self,
        broker: dramatiq.Broker,
        message: MessageProxy,
        *,
        result: Any = None,
        exception: BaseException | None = None,
    ) -> None:
        self._record(message, "ok" if exception is None else "error")

    def after_skip_message(self, broker: dramatiq.Broker, message: MessageProxy) -> None:
        self._record(message, "skipped")

    def after_worker_shutdown(self, broker: dramatiq.Broker, worker: dramatiq.Worker) -> None:
        directory = os.environ.get(MULTIPROC_ENV)
        if directory:
            mark_process_dead(os.getpid(), directory)  # type: ignore[no-untyped-call]

    def _record(self, message: MessageProxy, outcome: str) -> None:
        from runtime import metrics  # late: see the module docstring

        queue = q_name(message.queue_name)
        started = self._started.pop(message.message_id, None)
        if started is not None:  # first, so a scrape that counts the message has its time
            elapsed = time.perf_counter() - started
            metrics.worker_message_duration_seconds.labels(queue, message.actor_name).observe(
                elapsed
            )
        metrics.worker_messages_total.labels(queue, message.actor_name, outcome).inc()
