"""One SQLAlchemy engine per worker process, created on first use (after Dramatiq forks),
and the engines of the relay's and scheduler's loops, all made by `pooled_engine`."""

from __future__ import annotations

import time
from typing import Any

import psycopg
from sqlalchemy import Engine, create_engine, event
from sqlalchemy.exc import InvalidatePoolError
from sqlalchemy.pool import ConnectionPoolEntry, PoolProxiedConnection

from runtime.embedded import ensure_services
from runtime.settings import Settings, service_url, to_sqlalchemy_url

IDLE_BEFORE_PING_S = 1.0
"""A pooled connection returned longer ago than this is pinged before it is handed out."""

_RETURNED_AT = "vaultcraft_returned_at"

_engine: Engine | None = None
_settings: Settings | None = None


def settings() -> Settings:
    global _settings
    if _settings is None:
        _settings = Settings.from_env()
    return _settings


def database_url(config: Settings) -> str:
    """The service role's URL (starting the embedded servers if no URL is given)."""
    urls = ensure_services(config.data_dir, config.database_url, config.redis_url)
    return to_sqlalchemy_url(service_url(urls.database_url, config.service_database_url))


def engine() -> Engine:
    global _engine
    if _engine is None:
        _engine = pooled_engine(
            database_url(settings()),
            pool_size=4,
            max_overflow=4,
            application_name="vaultcraft-worker",
        )
    return _engine


def pooled_engine(
    url: str, *, pool_size: int, max_overflow: int, application_name: str | None = None
) -> Engine:
    """An engine whose pool pings a connection before handing it out only when it may have
    been cut: after a second idle, or after another of the pool's was found cut
    (`ping_when_idle`)."""
    connect_args: dict[str, Any] = {}
    if application_name is not None:
        connect_args["application_name"] = application_name
    made = create_engine(
        url, pool_size=pool_size, max_overflow=max_overflow, connect_args=connect_args
    )
    ping_when_idle(made, IDLE_BEFORE_PING_S)
    return made


def ping_when_idle(engine: Engine, idle_s: float) -> None:
    """`pool_pre_ping`, for connections that may have been cut since they were returned:
    those returned more than `idle_s` ago, and those returned before any connection of
    the pool was found dead.

    A pre-ping is a round trip at every checkout, and a posting batch, a relay round or a
    seal checks a connection out each time: under load that is one more statement a
    batch, on the connection the previous batch returned a moment ago. A connection idle
    for a while is the one a restart or an idle timeout may have cut: it is pinged, and
    when it is dead every connection pooled before it is replaced, as `pool_pre_ping`
    does. A connection cut while in steady use fails the statement that finds it and
    leaves the pool (that batch, round or seal is tried again, as after any connection
    lost mid-transaction); the connections returned before that are pinged at their next
    checkout, so a restart under load costs one failed statement a pool, not one a
    connection.
    """
    found_dead = [0.0]

    @event.listens_for(engine, "invalidate")
    def _invalidated(_dbapi: Any, _record: ConnectionPoolEntry, _exc: BaseException | None) -> None:
        found_dead[0] = time.monotonic()

    @event.listens_for(engine, "checkin")
    def _returned(_dbapi: Any, record: ConnectionPoolEntry) -> None:
        record.info[_RETURNED_AT] = time.monotonic()

    @event.listens_for(engine, "checkout")
    def _ping_if_idle(
        dbapi: Any, record: ConnectionPoolEntry, _proxy: PoolProxiedConnection
    ) -> None:
        returned = record.info.get(_RETURNED_AT)
        if returned is None:
            return  # new: the info goes with each connection
        if time.monotonic() - returned < idle_s and returned > found_dead[0]:
            return  # back a moment ago, and nothing was found cut since
        try:
            engine.dialect.do_ping(dbapi)
        except psycopg.Error as exc:  # as `pool_pre_ping`: the others may be cut too
            raise InvalidatePoolError("a pooled connection was closed") from exc
