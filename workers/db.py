"""One SQLAlchemy engine per worker process, created on first use (after Dramatiq forks)."""

from __future__ import annotations

from sqlalchemy import Engine, create_engine

from runtime.embedded import ensure_services
from runtime.settings import Settings, service_url, to_sqlalchemy_url

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
        _engine = create_engine(
            database_url(settings()),
            pool_size=4,
            max_overflow=4,
            pool_pre_ping=True,
            connect_args={"application_name": "vaultcraft-worker"},
        )
    return _engine
