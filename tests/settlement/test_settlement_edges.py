"""Settlement at the edges: drift it refuses, wallets it opens, and the operator command."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from sqlalchemy import Engine, text

from tests.settlement.books_sql import nonzero_books, settlement_of_each_transfer
from tests.settlement.ledger import CrossLedger, linked_pair, settle


def test_clearing_wallets_that_disagree_with_their_transfers_are_not_settled(
    ledger: CrossLedger, db: Engine
) -> None:
    """Drift on a clearing wallet stops that pair's settlement; nothing is written for it."""
    a, b = linked_pair(ledger)
    ledger.pay(a, b, 8_00)
    with db.begin() as conn:
        conn.execute(
            text(
                "UPDATE wallets SET balance = balance + 1 WHERE organization_id = :a"
                " AND counterparty_organization_id = :b"
            ),
            {"a": a.id, "b": b.id},
        )
    assert settle(db) == []
    assert all(v == [] for v in settlement_of_each_transfer(db).values())
    with db.begin() as conn:  # heal the drift; the pair then settles
        conn.execute(
            text(
                "UPDATE wallets SET balance = balance - 1 WHERE organization_id = :a"
                " AND counterparty_organization_id = :b"
            ),
            {"a": a.id, "b": b.id},
        )
    assert [s.net_amount for s in settle(db)] == [8_00]


def test_a_missing_system_wallet_is_opened_for_the_settlement(
    ledger: CrossLedger, db: Engine
) -> None:
    """A payee with no SYSTEM wallet in the currency gets one, through which money enters."""
    a = ledger.org(funded=10_00)
    b = ledger.org()
    with db.begin() as conn:
        conn.execute(text("DELETE FROM wallets WHERE id = :w"), {"w": b.system})
    ledger.accept(b, a)
    ledger.pay(a, b, 3_00)
    [s] = settle(db)
    assert s.net_amount == 3_00
    with db.connect() as conn:
        opened = conn.execute(
            text("SELECT balance FROM wallets WHERE organization_id = :o AND type = 'SYSTEM'"),
            {"o": b.id},
        ).scalar_one()
    assert opened == -3_00
    assert nonzero_books(db) == []


def test_the_settle_command_settles_and_prints_what_it_wrote(
    ledger: CrossLedger, db: Engine, fresh_url: str, redis_url: str, tmp_path: Path
) -> None:
    a, b = linked_pair(ledger)
    ledger.pay(a, b, 4_00)
    env = {
        **os.environ,
        "DATABASE_URL": fresh_url,
        "REDIS_URL": redis_url,
        "VAULTCRAFT_DATA_DIR": str(tmp_path),
    }
    done = subprocess.run(
        [sys.executable, "-m", "vaultcraft.cli", "settle", "--organization", str(b.id)],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    printed = json.loads(done.stdout.strip().splitlines()[-1])
    [s] = printed["settlements"]
    assert (s["net_amount"], s["payer_organization_id"]) == ("4.00", str(a.id))
    assert settle(db) == []
