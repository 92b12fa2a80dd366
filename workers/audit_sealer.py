"""Seals new audit records into their organization's hash chain, once a second.

A loop in the relay process; see `ledger_core.persistence.audit.chain`. Several relays may
run it: while one holds the seal cursor the others skip their round. Each chain that grew
gets its new head signed and published (`workers.audit_heads`).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from uuid import UUID

import redis
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from sqlalchemy import Connection, Engine
from sqlalchemy.exc import DBAPIError

from ledger_core.persistence.audit.chain import SEAL_BATCH, chain_head, seal_waiting
from messaging.broker import redis_url
from runtime.audit_keys import signing_key
from runtime.settings import Settings
from workers import db
from workers.audit_heads import database_name, publish_heads, sign_heads

log = logging.getLogger("vaultcraft.audit")

SEAL_EVERY_S = 1.0


def seal_all(engine: Engine, publish: HeadPublisher | None = None) -> int:
    """Seal every record whose transaction, and every one begun before it, has ended;
    returns how many were sealed (0 if another sealer holds the cursor).

    With `publish`, each chain that grew has its new head signed and published after each
    commit that sealed some of it. The round runs on one connection (each batch its own
    transaction): one checkout, so one pre-ping, a round.
    """
    total = 0
    with engine.connect() as conn:
        while True:
            with conn.begin():
                sealed = seal_waiting(conn, SEAL_BATCH)
            if sealed is None:
                break
            total += sealed.sealed
            if publish is not None:
                for organization_id in sealed.grown:
                    publish(conn, organization_id)
            if sealed.read < SEAL_BATCH:
                break
    return total


class HeadPublisher:
    """Signs a chain's committed head and puts it on the audit head stream."""

    def __init__(self, key: Ed25519PrivateKey, client: redis.Redis) -> None:
        self.key = key
        self.client = client
        self.database: str | None = None
        """The database's name, read once: an engine stays on one database."""

    def __call__(self, conn: Connection, organization_id: UUID | None) -> None:
        """Publish the chain's head as committed; `conn` is outside a transaction."""
        seq, hash_ = chain_head(conn, organization_id)
        if self.database is None:
            self.database = database_name(conn)
        conn.rollback()
        heads = sign_heads(self.key, self.database, [(organization_id, seq, hash_)])
        publish_heads(self.client, heads)


def run_audit_sealer(settings: Settings) -> Callable[[threading.Event], None]:
    def loop(stop: threading.Event) -> None:
        engine = db.pooled_engine(
            db.database_url(settings),
            pool_size=1,
            max_overflow=1,
            application_name="vaultcraft-audit-sealer",
        )
        client = redis.Redis.from_url(redis_url(settings), socket_timeout=5)
        publish = HeadPublisher(signing_key(settings), client)
        while not stop.wait(SEAL_EVERY_S):
            try:
                seal_all(engine, publish)
            except DBAPIError as exc:
                log.warning("Could not seal audit records this round: %s", exc.orig)
            except redis.RedisError as exc:
                log.warning("Could not publish a sealed audit head this round: %s", exc)
        client.close()
        engine.dispose()

    return loop
