"""Hand-built ledgers in plain SQL that follow the posting rules, and ways to break them.

`Books` posts the way the posting path does: lock the wallets in id order, update their
balances, insert entries with the running `balance_after`, all in one transaction. The
`tamper_*` helpers write behind the ledger's back, as an intruder or a bug would.
"""

from __future__ import annotations

import uuid
from uuid import UUID

from sqlalchemy import Connection, Engine, text


class Books:
    def __init__(self, engine: Engine, currency: str = "USD") -> None:
        self.engine = engine
        self.currency = currency

    def organization(self, name: str = "Org") -> UUID:
        with self.engine.begin() as conn:
            org: UUID = conn.execute(
                text("""
                    INSERT INTO organizations (name, default_currency) VALUES (:n, :c)
                    RETURNING id
                """),
                {"n": name, "c": self.currency},
            ).scalar_one()
        return org

    def wallet(self, org: UUID, type_: str = "PRIMARY", peer: UUID | None = None) -> UUID:
        with self.engine.begin() as conn:
            wallet: UUID = conn.execute(
                text("""
                    INSERT INTO wallets (organization_id, type, currency,
                        counterparty_organization_id)
                    VALUES (:org, :type, :cur, :peer) RETURNING id
                """),
                {"org": org, "type": type_, "cur": self.currency, "peer": peer},
            ).scalar_one()
        return wallet

    def transaction(
        self,
        conn: Connection,
        src: UUID,
        dst: UUID,
        amount: int,
        status: str = "COMPLETED",
        clearing: tuple[UUID, UUID] | None = None,
        age_s: float = 0,
        key: str | None = None,
    ) -> UUID:
        """Insert a transactions row (no entries); its orgs are read from the wallets."""
        tx = uuid.uuid4()
        conn.execute(
            text("""
                INSERT INTO transactions (id, organization_id, destination_organization_id,
                    idempotency_key, request_hash, kind, source_wallet_id, destination_wallet_id,
                    source_clearing_wallet_id, destination_clearing_wallet_id, amount, currency,
                    status, created_at, posted_at, seq)
                SELECT :id, s.organization_id, d.organization_id, :key, 'h', :kind, s.id, d.id,
                       :sc, :dc, :amount, :cur, CAST(:status AS text),
                       now() - make_interval(secs => :age),
                       CASE WHEN CAST(:status AS text) = 'COMPLETED' THEN now() END,
                       -- submission order: rows dated back come before every other, the
                       -- oldest first (the sequence's numbers are all positive)
                       CASE WHEN CAST(:age AS float8) > 0
                            THEN -CAST(round(CAST(:age AS float8) * 1000) AS bigint)
                            ELSE nextval(pg_get_serial_sequence('transactions', 'seq')) END
                FROM wallets s, wallets d WHERE s.id = :src AND d.id = :dst
            """),
            {
                "id": tx,
                "key": key or str(tx),
                "kind": "TRANSFER" if clearing is None else "CROSS_ORG",
                "src": src,
                "dst": dst,
                "sc": None if clearing is None else clearing[0],
                "dc": None if clearing is None else clearing[1],
                "amount": amount,
                "cur": self.currency,
                "status": status,
                "age": age_s,
            },
        )
        return tx

    def lock(self, conn: Connection, wallets: list[UUID]) -> None:
        """Lock wallets in id order before anything else touches them, as the poster does
        (the transactions row's foreign keys would otherwise take key-share locks first)."""
        conn.execute(
            text(
                "SELECT 1 FROM wallets WHERE id = ANY(CAST(:ids AS uuid[])) ORDER BY id FOR UPDATE"
            ),
            {"ids": wallets},
        )

    def post_legs(
        self,
        conn: Connection,
        legs: list[tuple[UUID, str, int]],
        transaction_id: UUID | None = None,
        settlement_id: UUID | None = None,
    ) -> None:
        """Lock wallets in id order, then write entries and balances as the poster does."""
        ids = sorted({w for w, _, _ in legs}, key=str)
        rows = conn.execute(
            text("""
                SELECT id, organization_id, balance FROM wallets
                WHERE id = ANY(CAST(:ids AS uuid[])) ORDER BY id FOR UPDATE
            """),
            {"ids": ids},
        )
        state = {r.id: [r.organization_id, r.balance] for r in rows}
        for wallet, direction, amount in legs:
            state[wallet][1] += amount if direction == "CREDIT" else -amount
            conn.execute(
                text("""
                    INSERT INTO ledger_entries (transaction_id, settlement_id, wallet_id,
                        organization_id, direction, amount, currency, balance_after)
                    VALUES (:tx, :st, :w, :org, :dir, :amount, :cur, :after)
                """),
                {
                    "tx": transaction_id,
                    "st": settlement_id,
                    "w": wallet,
                    "org": state[wallet][0],
                    "dir": direction,
                    "amount": amount,
                    "cur": self.currency,
                    "after": state[wallet][1],
                },
            )
        for wallet, (_, balance) in state.items():
            conn.execute(
                text("UPDATE wallets SET balance = :b WHERE id = :id"), {"b": balance, "id": wallet}
            )

    def transfer(self, src: UUID, dst: UUID, amount: int) -> UUID:
        with self.engine.begin() as conn:
            self.lock(conn, [src, dst])
            tx = self.transaction(conn, src, dst, amount)
            self.post_legs(conn, [(src, "DEBIT", amount), (dst, "CREDIT", amount)], tx)
        return tx

    def cross_org(
        self, src: UUID, src_clearing: UUID, dst_clearing: UUID, dst: UUID, amount: int
    ) -> UUID:
        with self.engine.begin() as conn:
            self.lock(conn, [src, src_clearing, dst_clearing, dst])
            tx = self.transaction(conn, src, dst, amount, clearing=(src_clearing, dst_clearing))
            legs = [
                (src, "DEBIT", amount),
                (src_clearing, "CREDIT", amount),
                (dst_clearing, "DEBIT", amount),
                (dst, "CREDIT", amount),
            ]
            self.post_legs(conn, legs, tx)
        return tx

    def settlement(self, payer: UUID, payee: UUID, legs: list[tuple[UUID, str, int]]) -> UUID:
        st = uuid.uuid4()
        with self.engine.begin() as conn:
            conn.execute(
                text("""
                    INSERT INTO settlements (id, payer_organization_id, payee_organization_id,
                        currency, gross_payer_to_payee, gross_payee_to_payer, net_amount,
                        transfer_count)
                    VALUES (:id, :payer, :payee, :cur, 0, 0, 0, 0)
                """),
                {"id": st, "payer": payer, "payee": payee, "cur": self.currency},
            )
            self.post_legs(conn, legs, settlement_id=st)
        return st

    def unposted(self, src: UUID, dst: UUID, amount: int, status: str, age_s: float = 0) -> UUID:
        with self.engine.begin() as conn:
            return self.transaction(conn, src, dst, amount, status=status, age_s=age_s)

    # Writing behind the ledger's back.

    def tamper(self, sql: str, **params: object) -> None:
        """Run SQL with the append-only guard and the overdraft check switched off."""
        with self.engine.begin() as conn:
            conn.execute(
                text("ALTER TABLE ledger_entries DISABLE TRIGGER ledger_entries_append_only")
            )
            conn.execute(text(sql), params)
            conn.execute(
                text("ALTER TABLE ledger_entries ENABLE TRIGGER ledger_entries_append_only")
            )

    def entries_of(self, wallet: UUID) -> list[tuple[int, str, int, int]]:
        with self.engine.connect() as conn:
            rows = conn.execute(
                text("""
                    SELECT id, direction, amount, balance_after FROM ledger_entries
                    WHERE wallet_id = :w ORDER BY id
                """),
                {"w": wallet},
            )
            return [(r.id, r.direction, r.amount, r.balance_after) for r in rows]

    def balance(self, wallet: UUID) -> int:
        with self.engine.connect() as conn:
            value: int = conn.execute(
                text("SELECT balance FROM wallets WHERE id = :w"), {"w": wallet}
            ).scalar_one()
        return value

    def allow_overdrafts(self) -> None:
        """Drop the wallets' overdraft CHECK, so a bug that overdraws can be simulated."""
        with self.engine.begin() as conn:
            conn.execute(text("ALTER TABLE wallets DROP CONSTRAINT ck_wallets_no_overdraft"))
