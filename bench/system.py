"""Start the whole system for a benchmark: a fresh database, migrations, and the processes.

Every process type the operator runs (`vaultcraft.supervise.PROCESS_TYPES`, the
Procfile: gateway, posting and job workers, webhook workers, the relay with the posting
dispatcher, the scheduler) runs with the same command line, as a child process with its
own environment, so what is measured is the product, not a test double.
"""

from __future__ import annotations

import asyncio
import os
import secrets
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import psycopg
from alembic import command
from alembic.config import Config
from sqlalchemy import create_engine
from sqlalchemy.engine import make_url
from sqlalchemy.pool import NullPool

from bench.dataset import DataSet, build
from ledger_core.persistence.reconciliation.invariants import check_invariants
from runtime.embedded import ensure_services, stop_services
from runtime.metrics_exposition import GROUP_PORT_OFFSETS
from runtime.ports import free_port_block
from runtime.settings import to_psycopg_url, to_sqlalchemy_url
from vaultcraft.supervise import PROCESS_TYPES

ROOT = Path(__file__).resolve().parent.parent


def exit_on_sigterm() -> None:
    """`kill` (SIGTERM) ends a benchmark as Ctrl-C does: through the `finally` blocks that
    stop the system's processes and drop the benchmark's databases, instead of leaving them
    running and stored."""
    signal.signal(signal.SIGTERM, lambda signum, _frame: sys.exit(128 + signum))


def roles() -> dict[str, list[str]]:
    """The operator's process types (`vaultcraft.supervise.PROCESS_TYPES`, the Procfile):
    role -> arguments after `vaultcraft`. `web` is called `gateway` here."""
    return {
        ("gateway" if program.name == "web" else program.name): shlex.split(program.command)[1:]
        for program in PROCESS_TYPES
    }


def create_database(server_url: str, prefix: str = "vaultcraft_bench") -> str:
    """Create an empty database on the server of `server_url`; return its URL."""
    url = make_url(to_sqlalchemy_url(server_url))
    name = f"{prefix}_{secrets.token_hex(4)}"
    admin = url.set(database="postgres").render_as_string(hide_password=False)
    with psycopg.connect(to_psycopg_url(admin), autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')  # name is ours
    return url.set(database=name).render_as_string(hide_password=False)


def drop_database(url: str) -> None:
    parsed = make_url(to_sqlalchemy_url(url))
    admin = parsed.set(database="postgres").render_as_string(hide_password=False)
    with psycopg.connect(to_psycopg_url(admin), autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{parsed.database}" WITH (FORCE)')


def migrate(url: str) -> None:
    """`alembic upgrade head` on `url`, programmatically."""
    config = Config(str(ROOT / "alembic.ini"))
    config.set_main_option("script_location", str(ROOT / "migrations"))
    config.set_main_option("sqlalchemy.url", to_sqlalchemy_url(url).replace("%", "%%"))
    command.upgrade(config, "head")


def invariant_violations(url: str) -> list[str]:
    """Promises 1-5 of invariants.md on the database at `url`, nothing left PENDING.

    The product's own checker (`check_invariants`), read from one snapshot; an empty list
    means the ledger holds.
    """
    engine = create_engine(to_sqlalchemy_url(url), poolclass=NullPool)
    try:
        with engine.connect() as conn:
            return [str(v) for v in check_invariants(conn, require_final=True)]
    finally:
        engine.dispose()


def vaultcraft_command() -> list[str]:
    """The `vaultcraft` console script of this interpreter's environment."""
    beside = Path(sys.executable).parent / "vaultcraft"
    if beside.exists():
        return [str(beside)]
    found = shutil.which("vaultcraft")
    if found:
        return [found]
    return [sys.executable, "-m", "vaultcraft.cli"]


BENCH_SIGNUP_LIMIT = 1_000_000
"""Sign-ups a client address may make in the throttle's window, for the system under test:
every run and every `bench.profile` signs up from 127.0.0.1 into a Redis that outlives
them, and the production default (10 in 15 minutes) refused the eleventh run in a row
with a 429. The throttle is not what the benchmark measures."""


@dataclass
class System:
    """The running processes of one benchmark run, by role."""

    database_url: str
    redis_url: str
    data_dir: Path
    http_port: int = field(default_factory=lambda: free_port_block(1))
    metrics_port: int = 0
    procs: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not self.metrics_port:
            self.metrics_port = free_port_block(
                size=max(GROUP_PORT_OFFSETS.values()) + 1, avoid=frozenset({self.http_port})
            )

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.http_port}"

    def env(self) -> dict[str, str]:
        env = dict(os.environ)
        env.update(
            DATABASE_URL=self.database_url,
            REDIS_URL=self.redis_url,
            VAULTCRAFT_HTTP_PORT=str(self.http_port),
            VAULTCRAFT_METRICS_PORT=str(self.metrics_port),
            VAULTCRAFT_DATA_DIR=str(self.data_dir),
            VAULTCRAFT_LOG_FORMAT=env.get("VAULTCRAFT_LOG_FORMAT", "json"),
            VAULTCRAFT_SIGNUP_LIMIT=env.get("VAULTCRAFT_SIGNUP_LIMIT", str(BENCH_SIGNUP_LIMIT)),
        )
        return env

    def start(self, ready_timeout_s: float = 90.0) -> None:
        """Start every role and wait until `GET /ready` answers 200."""
        self.data_dir.mkdir(parents=True, exist_ok=True)
        for role, arguments in roles().items():
            log = (self.data_dir / f"{role}.log").open("ab")
            self.procs[role] = subprocess.Popen(
                [*vaultcraft_command(), *arguments],
                env=self.env(),
                stdout=log,
                stderr=subprocess.STDOUT,
                cwd=ROOT,
                start_new_session=True,
            )
        deadline = time.monotonic() + ready_timeout_s
        while time.monotonic() < deadline:
            for role, proc in self.procs.items():
                if proc.poll() is not None:
                    raise RuntimeError(f"{role} exited ({proc.returncode}): {self.log_tail(role)}")
            if self._ready():
                return
            time.sleep(0.2)
        raise RuntimeError(
            f"gateway not ready after {ready_timeout_s}s: {self.log_tail('gateway')}"
        )

    def _ready(self) -> bool:
        try:
            with urllib.request.urlopen(f"{self.base_url}/ready", timeout=2) as resp:  # noqa: S310
                return bool(resp.status == 200)
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            return False

    def log_tail(self, role: str, chars: int = 2000) -> str:
        path = self.data_dir / f"{role}.log"
        return path.read_text(errors="replace")[-chars:] if path.exists() else "(no log)"

    def log_problems(self, role: str, limit: int = 10) -> list[str]:
        """The last `limit` warning or error lines of a role's log (access lines skipped)."""
        path = self.data_dir / f"{role}.log"
        if not path.exists():
            return []
        lines = path.read_text(errors="replace").splitlines()
        found = [line for line in lines if "warning" in line.lower() or "error" in line.lower()]
        return [line[:1000] for line in found[-limit:]]

    def roles(self) -> dict[int, str]:
        """Every process of the system, children included: pid -> role."""
        return {
            pid: role
            for role, proc in self.procs.items()
            for pid in [proc.pid, *descendants(proc.pid)]
        }

    def rss_mb(self) -> dict[str, float]:
        """Resident memory of every process of every role, children included, in MB."""
        out: dict[str, float] = {}
        for role, proc in self.procs.items():
            for pid in [proc.pid, *descendants(proc.pid)]:
                rss = vm_rss_kb(pid)
                if rss is not None:
                    out[f"{role}[{pid}] {process_name(pid)}"] = round(rss / 1024, 1)
        return out

    def stop(self, timeout_s: float = 15.0) -> None:
        """SIGTERM each role, then SIGKILL its process group if it has not gone."""
        for proc in self.procs.values():
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + timeout_s
        for proc in self.procs.values():
            try:
                proc.wait(timeout=max(deadline - time.monotonic(), 0.1))
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()


@contextmanager
def system_with_wallets(prefix: str, wallets: int) -> Iterator[tuple[System, DataSet, str]]:
    """A scratch database migrated to head, every role running on it, and `wallets` funded
    wallets built through the API; the system, the database and any embedded servers
    (used when `DATABASE_URL` / `REDIS_URL` are not set) are gone afterwards.
    Yields the system, the data set and the database's URL."""
    given_db, given_redis = os.environ.get("DATABASE_URL"), os.environ.get("REDIS_URL")
    work = Path(tempfile.mkdtemp(prefix=f"{prefix}-"))
    try:
        urls = ensure_services(work / "services", given_db, given_redis)
        db_url = create_database(urls.database_url, prefix)
        system = System(db_url, urls.redis_url, work / "app")
        try:
            migrate(db_url)
            system.start()
            yield system, asyncio.run(build(system.base_url, wallets, "setup")), db_url
        finally:
            system.stop()
            drop_database(db_url)
    finally:
        stop_services(work / "services", given_db, given_redis)
        shutil.rmtree(work, ignore_errors=True)


def _proc_stat_ppid(pid: int) -> int | None:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return int(stat.rsplit(")", 1)[1].split()[1])


def descendants(root: int) -> list[int]:
    """Every process below `root`, from the parent links in /proc."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            ppid = _proc_stat_ppid(int(entry.name))
            if ppid is not None:
                children.setdefault(ppid, []).append(int(entry.name))
    found: list[int] = []
    stack = [root]
    while stack:
        for child in children.get(stack.pop(), []):
            found.append(child)
            stack.append(child)
    return found


def vm_rss_kb(pid: int) -> int | None:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    except OSError:
        return None
    return None


def process_name(pid: int) -> str:
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
    except OSError:
        return "?"
    return raw.strip()[:80]
