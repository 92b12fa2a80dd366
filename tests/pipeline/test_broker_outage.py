"""The relay's dispatcher outlives a broker it cannot reach and keeps trying to kick."""

from __future__ import annotations

import time
from pathlib import Path

from sqlalchemy import Engine

from runtime.ports import free_port
from tests.support.ledger import create_book
from tests.support.ledger_sql import cancel_transfer, pending_transfer
from tests.support.stack import Stack

FAILED_KICK = "Dispatcher could not reach the broker"


def test_the_dispatcher_retries_while_the_broker_is_down(
    database_url: str, redis_url: str, engine: Engine, tmp_path: Path
) -> None:
    """A kick that fails is logged and tried again; the dispatcher thread never dies."""
    # Given a PENDING transfer and a relay whose RabbitMQ does not answer
    book = create_book(engine, 1)
    waiting = pending_transfer(engine, str(book.system_wallet_id), str(book.wallet_ids[0]), 100)
    dead = f"amqp://guest:guest@127.0.0.1:{free_port()}/"
    try:
        with Stack(database_url, redis_url, tmp_path, processes=("relay",), broker_url=dead) as s:
            # When the dispatcher probes for it and fails to send a kick
            deadline = time.monotonic() + 60
            while s.logs("relay").count(FAILED_KICK) < 2:
                assert time.monotonic() < deadline, s.logs("relay")[-3000:]
                time.sleep(0.2)
            # Then it tried again after the first failure, and is still running
            assert s.running("relay")
    finally:
        cancel_transfer(engine, waiting)
