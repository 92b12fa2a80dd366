"""Alembic environment: one transaction per migration, bounded waits, one migrator at a time."""

from __future__ import annotations

import os

from alembic import context
from sqlalchemy import create_engine, pool, text
from sqlalchemy.dialects.postgresql.base import ischema_names

from ledger_core.persistence.tables import TransactionId, metadata
from runtime.settings import to_sqlalchemy_url

MIGRATION_LOCK_ID = 0x5641554C54  # "VAULT": two deploys never migrate at once

ischema_names.setdefault("xid8", TransactionId)
"""Reflection (`alembic check`, autogenerate) reads `xid8` columns as the type the tables
declare, instead of warning that it does not know the type and comparing nothing."""


def _url() -> str:
    url = context.config.get_main_option("sqlalchemy.url") or os.environ.get("DATABASE_URL")
    if not url:
        raise SystemExit("DATABASE_URL is not set; `vaultcraft migrate` starts the embedded one")
    return to_sqlalchemy_url(url)


def run_offline() -> None:
    context.configure(url=_url(), target_metadata=metadata, literal_binds=True)
    with context.begin_transaction():
        context.run_migrations()


def run_online() -> None:
    engine = create_engine(_url(), poolclass=pool.NullPool)
    with engine.connect() as connection:
        connection.execute(text("SET lock_timeout = '5s'"))
        connection.execute(text("SET statement_timeout = '300s'"))
        connection.execute(text("SELECT pg_advisory_lock(:id)"), {"id": MIGRATION_LOCK_ID})
        connection.commit()
        try:
            context.configure(
                connection=connection,
                target_metadata=metadata,
                transaction_per_migration=True,
                compare_type=True,
            )
            with context.begin_transaction():
                context.run_migrations()
        finally:
            connection.execute(text("SELECT pg_advisory_unlock(:id)"), {"id": MIGRATION_LOCK_ID})
            connection.commit()


if context.is_offline_mode():
    run_offline()
else:
    run_online()
