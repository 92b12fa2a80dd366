"""Organizations moving money across each other through the real intake and posting paths.

`CrossLedger` stores transfer intents with `ledger_core.persistence.transfers.intake` (which opens
the CLEARING wallets on first use, exactly as the gateway does) and posts them with
`ledger_core.persistence.transfers.posting.post_batch`, so the positions settlement nets are the
ones production builds.
"""

from __future__ import annotations

import asyncio
import uuid
from dataclasses import dataclass
from types import TracebackType
from uuid import UUID

from sqlalchemy import Engine, NullPool, text
from sqlalchemy.ext.asyncio import create_async_engine

from ledger_core.accounts import Principal, Role
from ledger_core.intents import TransferIntent
from ledger_core.persistence.settlement.settle import run_settlement
from ledger_core.persistence.transfers.intake import route_all, store_intents
from ledger_core.persistence.transfers.posting import post_batch
from ledger_core.settlement import Settlement


@dataclass(frozen=True)
class Org:
    id: UUID
    admin: Principal
    system: UUID
    wallet: UUID


class CrossLedger:
    def __init__(self, engine: Engine, url: str, currency: str = "USD") -> None:
        self.engine = engine
        self.currency = currency
        self._runner = asyncio.Runner()
        self._async = create_async_engine(url, poolclass=NullPool)

    def __enter__(self) -> CrossLedger:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._runner.run(self._async.dispose())
        self._runner.close()

    def org(self, funded: int = 0) -> Org:
        """An organization with an admin, a SYSTEM wallet and a PRIMARY wallet holding `funded`."""
        with self.engine.begin() as conn:
            org = conn.execute(
                text(
                    "INSERT INTO organizations (name, default_currency) VALUES ('o', :c) RETURNING id"
                ),
                {"c": self.currency},
            ).scalar_one()
            user = conn.execute(
                text(
                    "INSERT INTO users (organization_id, email, password_hash, full_name, role)"
                    " VALUES (:o, :e, '\\x00', 'Admin', 'ADMIN') RETURNING id"
                ),
                {"o": org, "e": f"{uuid.uuid4().hex}@example.com"},
            ).scalar_one()
            system, wallet = (
                conn.execute(
                    text(
                        "INSERT INTO wallets (organization_id, type, currency)"
                        " VALUES (:o, :t, :c) RETURNING id"
                    ),
                    {"o": org, "t": wallet_type, "c": self.currency},
                ).scalar_one()
                for wallet_type in ("SYSTEM", "PRIMARY")
            )
        found = Org(org, Principal(user, org, Role.ADMIN), system, wallet)
        if funded:
            self.transfer(found, found.system, found.wallet, funded)
        return found

    def accept(self, payee: Org, payer: Org) -> None:
        """`payee` accepts transfers from `payer` (a counterparty link)."""
        with self.engine.begin() as conn:
            conn.execute(
                text(
                    "INSERT INTO counterparties (organization_id, counterparty_organization_id)"
                    " VALUES (:payee, :payer)"
                ),
                {"payee": payee.id, "payer": payer.id},
            )

    def submit(self, actor: Org, source: UUID, destination: UUID, amount: int) -> UUID:
        """Store one transfer intent as PENDING, through the gateway's own intake."""
        intent = TransferIntent(
            idempotency_key=str(uuid.uuid4()),
            source_wallet_id=source,
            destination_wallet_id=destination,
            amount=amount,
            currency=self.currency,
        )

        async def store() -> UUID:
            async with self._async.begin() as conn:
                routes = await route_all(conn, actor.admin, [intent])
                stored = await store_intents(conn, actor.admin, [intent], routes)
            tx_id: UUID = stored[0].row["id"]
            return tx_id

        return self._runner.run(store())

    def post_all(self) -> None:
        while True:
            with self.engine.begin() as conn:
                result = post_batch(conn, 500)
            if result.claimed == 0 and not result.more:  # `more`: wallets busy, again
                return

    def transfer(self, actor: Org, source: UUID, destination: UUID, amount: int) -> UUID:
        """Submit and post one transfer; it must complete."""
        tx_id = self.submit(actor, source, destination, amount)
        self.post_all()
        assert self.status(tx_id) == "COMPLETED"
        return tx_id

    def status(self, tx_id: UUID) -> str:
        with self.engine.connect() as conn:
            status: str = conn.execute(
                text("SELECT status FROM transactions WHERE id = :id"), {"id": tx_id}
            ).scalar_one()
        return status

    def pay(self, payer: Org, payee: Org, amount: int) -> UUID:
        """A cross-organization transfer from `payer`'s wallet to `payee`'s, posted."""
        return self.transfer(payer, payer.wallet, payee.wallet, amount)


def linked_pair(ledger: CrossLedger) -> tuple[Org, Org]:
    """Two funded organizations that accept transfers from each other."""
    a, b = ledger.org(funded=100_00), ledger.org(funded=100_00)
    ledger.accept(b, a)
    ledger.accept(a, b)
    return a, b


def settle(engine: Engine) -> list[Settlement]:
    """One settlement run over every pair, as the scheduled job does it."""
    with engine.connect() as conn:
        return run_settlement(conn)
