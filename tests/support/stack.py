"""The whole system as real processes: gateway, posting workers, relay and, if asked,
webhook workers and the scheduler.

Tests start a `Stack` over the session's database and Redis, talk to it over HTTP, and
may kill or restart any of its processes to check what survives. Each process writes its
output to `log_dir/<name>.log`; the metrics of the worker, relay and scheduler groups are
served on `metrics_port(group)`.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from types import TracebackType

import httpx

from runtime.metrics_exposition import GROUP_PORT_OFFSETS
from runtime.ports import free_port_block

JWT_SECRET = "stack-test-secret-" + "s" * 32
DEFAULT_PROCESSES = ("gateway", "worker", "relay")
POSTING_QUEUES = ("posting", "jobs")
WEBHOOK_QUEUES = ("webhooks",)


def role_of(name: str) -> str:
    """The process type a process is an instance of: `worker.2` is a second `worker`."""
    return name.split(".", 1)[0]


class Stack:
    """Run `vaultcraft gateway`, `worker` and `relay` (and `scheduler`) as subprocesses.

    Name several instances of one command `worker`, `worker.2`, ...: each is its own
    process group (killed alone) with its own metrics ports. A `webhooks` process is a
    `vaultcraft worker --queues webhooks`, as in the Procfile; when the stack has one, the
    `worker` processes consume only the posting queues, so killing one never touches a
    delivery in flight. A stack whose `processes` name no `gateway` serves no HTTP:
    `wait_ready` then returns at once. `broker_url` (an `amqp://` URL) runs Dramatiq on
    RabbitMQ instead of the Redis of `redis_url`.
    """

    def __init__(
        self,
        database_url: str,
        redis_url: str,
        data_dir: Path,
        *,
        processes: tuple[str, ...] = DEFAULT_PROCESSES,
        scheduler: bool = False,
        worker_args: tuple[str, ...] = ("--processes", "1", "--threads", "4"),
        extra_env: dict[str, str] | None = None,
        broker_url: str | None = None,
    ) -> None:
        port = free_port_block(1)
        self.first_metrics_port = _metrics_ports(avoid=frozenset({port}))
        self.data_dir = data_dir
        self.log_dir = data_dir / "logs"
        self.log_dir.mkdir(parents=True, exist_ok=True)
        self.names = (*processes, "scheduler") if scheduler else processes
        self.worker_args = worker_args
        self.broker_url = broker_url or redis_url
        self.env = {
            **os.environ,
            "DATABASE_URL": database_url,
            "REDIS_URL": redis_url,
            "BROKER_URL": broker_url or "",
            "VAULTCRAFT_DATA_DIR": str(data_dir),
            "VAULTCRAFT_METRICS_PORT": str(self.first_metrics_port),
            "VAULTCRAFT_JWT_SECRET": JWT_SECRET,
            "VAULTCRAFT_BCRYPT_ROUNDS": "4",
            "VAULTCRAFT_SIGNUP_LIMIT": "100000",  # every tenant signs up from 127.0.0.1
            "VAULTCRAFT_LOG_FORMAT": "json",
            **(extra_env or {}),
        }
        self.procs: dict[str, subprocess.Popen[bytes]] = {}
        self.use_port(port)

    def use_port(self, port: int) -> None:
        """Serve HTTP on `port` from the gateway's next start on."""
        self.port = port
        self.base_url = f"http://127.0.0.1:{port}"
        self.env["VAULTCRAFT_HTTP_PORT"] = str(port)

    def command(self, name: str) -> list[str]:
        role = role_of(name)
        argv = [sys.executable, "-m", "vaultcraft.cli"]
        if role == "webhooks":
            queues = ["--queues", *WEBHOOK_QUEUES, "--metrics-group", "webhooks"]
            return [*argv, "worker", *self.worker_args, *queues]
        if role != "worker":
            return [*argv, role]
        if any(role_of(other) == "webhooks" for other in self.names):
            return [*argv, "worker", *self.worker_args, "--queues", *POSTING_QUEUES]
        return [*argv, "worker", *self.worker_args]

    def start(self, name: str) -> None:
        env = self.env
        if name != role_of(name):
            avoid = frozenset({self.port, *self._metrics_block()})
            env = {**env, "VAULTCRAFT_METRICS_PORT": str(_metrics_ports(avoid))}
        with (self.log_dir / f"{name}.log").open("ab") as log:
            self.procs[name] = subprocess.Popen(
                self.command(name),
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )

    def kill(self, name: str, sig: int = signal.SIGKILL) -> None:
        """Signal a process and everything it started (Dramatiq forks its workers)."""
        proc = self.procs[name]
        try:
            os.killpg(proc.pid, sig)
            proc.wait(timeout=20)
        except ProcessLookupError:
            pass
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=10)

    def _metrics_block(self) -> range:
        return range(self.first_metrics_port, self.first_metrics_port + len(GROUP_PORT_OFFSETS))

    def metrics_port(self, group: str) -> int:
        """Where the `worker`, `webhooks`, `relay` or `scheduler` group serves its metrics."""
        return self.first_metrics_port + GROUP_PORT_OFFSETS[group]

    def stop(self, name: str, timeout_s: float = 30.0) -> int:
        """SIGTERM the process itself, as supervisord does, and wait for it; its exit code.

        Only the leader is signalled: Dramatiq's main process passes the signal on to its
        worker processes, which finish their messages (a second signal would abandon them).
        """
        proc = self.procs[name]
        proc.send_signal(signal.SIGTERM)
        return proc.wait(timeout=timeout_s)

    def restart(self, name: str) -> None:
        self.kill(name)
        self.start(name)
        if name == "gateway":
            self.wait_ready()

    def running(self, name: str) -> bool:
        proc = self.procs.get(name)
        return proc is not None and proc.poll() is None

    def wait_ready(self, timeout_s: float = 60.0) -> None:
        if "gateway" not in self.names:
            return
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            try:
                if httpx.get(self.base_url + "/ready", timeout=2).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            gateway = self.procs.get("gateway")
            if gateway is not None and gateway.poll() is not None:
                raise RuntimeError(f"gateway exited: {self.logs('gateway')[-3000:]}")
            time.sleep(0.1)
        raise TimeoutError(f"gateway not ready: {self.logs('gateway')[-3000:]}")

    def logs(self, name: str) -> str:
        return (self.log_dir / f"{name}.log").read_text(errors="replace")

    def __enter__(self) -> Stack:
        """Start every process; should the stack not come up, stop what did start.

        A stack left half-started would keep posting and relaying from the session's
        database and broker beside the stacks of later tests (`with` calls `__exit__`
        only after `__enter__` returned)."""
        try:
            for name in self.names:
                self.start(name)
            self._wait_ready_moving_port()
        except BaseException:
            self.__exit__(None, None, None)
            raise
        return self

    def _wait_ready_moving_port(self, attempts: int = 3) -> None:
        """`wait_ready`, but a gateway that lost its port to another process between
        `free_port_block` and its bind is started again on a new one."""
        for attempt in range(attempts):
            try:
                self.wait_ready()
                return
            except RuntimeError as exc:
                if "address already in use" not in str(exc) or attempt == attempts - 1:
                    raise
            self.use_port(free_port_block(1, avoid=frozenset(self._metrics_block())))
            self.start("gateway")

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        for name in list(self.procs):
            try:
                self.stop(name)
            except subprocess.TimeoutExpired:
                self.kill(name)  # SIGKILL to the whole group


def _metrics_ports(avoid: frozenset[int]) -> int:
    """The first metrics port of a stack: one port a group, counted as the product counts."""
    return free_port_block(len(GROUP_PORT_OFFSETS), avoid)
