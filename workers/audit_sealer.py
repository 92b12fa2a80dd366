"""Seals new audit records into their organization's hash chain, once a second.

A loop in the relay process; see `ledger_core.persistence.audit.chain`. Several relays may
run it: a chain another sealer is working on is skipped until the next round.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

from sqlalchemy import Engine, create_engine
from sqlalchemy.exc import DBAPIError

from ledger_core.persistence.audit.chain import (
    SEAL_BATCH,
    seal_organization,
    unsealed_organizations,
)
from runtime.settings import Settings
from workers import db

log = logging.getLogger("vaultcraft.audit")

SEAL_EVERY_S = 1.0


def seal_all(engine: Engine) -> int:
    """Seal every waiting record of every organization; returns how many were sealed."""
    total = 0
    with engine.connect() as conn:
        organizations = unsealed_organizations(conn)
    for organization_id in organizations:
        while True:
            with engine.begin() as conn:
                sealed = seal_organization(conn, organization_id, SEAL_BATCH)
            total += sealed or 0
            if sealed is None or sealed < SEAL_BATCH:
                break
    return total


def run_audit_sealer(settings: Settings) -> Callable[[threading.Event], None]:
    def loop(stop: threading.Event) -> None:
        engine = create_engine(
            db.database_url(settings),
            pool_size=1,
            max_overflow=1,
            pool_pre_ping=True,
            connect_args={"application_name": "vaultcraft-audit-sealer"},
        )
        while not stop.wait(SEAL_EVERY_S):
            try:
                seal_all(engine)
            except DBAPIError as exc:
                log.warning("Could not seal audit records this round: %s", exc.orig)
        engine.dispose()

    return loop
