"""One scheduler at a time runs each job: a PostgreSQL advisory lock per job.

Each job has its own dedicated connection and a session-level `pg_try_advisory_lock`
keyed by the job's name. The scheduler that takes the lock keeps it, and so stays the
job's only runner, for as long as its session lives; every other scheduler's attempt
fails and it skips the tick. Holding the lock across ticks, rather than per run, is
what stops two schedulers whose clocks tick a second apart from both sending the same
minute's job.

Why PostgreSQL and not a Redis lock with an expiry: the lock lives exactly as long as
the holder's database session. A holder that dies, or whose connection breaks, loses it
at once (the server ends the session), with no expiry to tune and no window in which a
slow but alive holder finds its lock expired and taken by another scheduler. Redis here
runs without persistence and may restart empty, which would drop every lock. PostgreSQL
is also where the jobs' work is decided, so a scheduler that cannot reach it has nothing
useful to run anyway.
"""

from __future__ import annotations

import hashlib
import logging

import psycopg

log = logging.getLogger("vaultcraft.scheduler")


def lock_key(job: str) -> int:
    """A stable signed 64-bit advisory lock key for a job name."""
    digest = hashlib.sha256(f"vaultcraft-job:{job}".encode()).digest()
    return int.from_bytes(digest[:8], "big", signed=True)


class JobGuard:
    """Leadership of one job, held on a dedicated PostgreSQL session."""

    def __init__(self, dsn: str, job: str) -> None:
        self.dsn = dsn
        self.job = job
        self.key = lock_key(job)
        self._conn: psycopg.Connection[tuple[object, ...]] | None = None

    @property
    def held(self) -> bool:
        return self._conn is not None

    def try_acquire(self) -> bool:
        """True if this process holds the job's lock (taking it now if it is free)."""
        if self._conn is not None:
            try:
                self._conn.execute("SELECT 1")
                return True
            except psycopg.Error:
                log.warning("Lost the database session holding job %s; retrying.", self.job)
                self._drop()
        try:
            conn = psycopg.connect(
                self.dsn,
                autocommit=True,
                connect_timeout=5,
                application_name="vaultcraft-scheduler",
            )
        except psycopg.Error as exc:
            log.warning("Cannot reach the database to guard job %s: %s", self.job, exc)
            return False
        row = conn.execute("SELECT pg_try_advisory_lock(%s)", (self.key,)).fetchone()
        if row is None or not row[0]:
            conn.close()
            return False
        log.info("This scheduler now runs job %s.", self.job)
        self._conn = conn
        return True

    def release(self) -> None:
        """Give the job up: unlock and close the session."""
        if self._conn is not None:
            try:
                self._conn.execute("SELECT pg_advisory_unlock(%s)", (self.key,))
            except psycopg.Error:
                pass  # the session is gone, and the lock with it
            self._drop()

    def _drop(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            conn.close()
