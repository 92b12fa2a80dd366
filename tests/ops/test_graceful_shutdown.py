"""SIGTERM, as supervisord and container runtimes send it, loses nothing in flight.

The gateway answers the requests it holds before it exits; a worker group finishes or
gives back its messages, and whatever it had not posted is posted after the restart.
"""

from __future__ import annotations

import functools
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest
from sqlalchemy import Engine, create_engine, text

from gateway.server import SHUTDOWN_TIMEOUT_S
from ledger_core.persistence.reconciliation.invariants import check_invariants, describe
from tests.support.stack import Stack
from tests.support.stack_api import Tenant, leg, signup
from vaultcraft.cli import WORKER_SHUTDOWN_MS


@pytest.fixture(scope="module")
def engine(own_database: str) -> Iterator[Engine]:
    eng = create_engine(own_database)
    yield eng
    eng.dispose()


def statuses(engine: Engine, ids: list[str]) -> dict[str, int]:
    with engine.connect() as conn:
        rows = conn.execute(
            text(
                "SELECT status, count(*) FROM transactions"
                " WHERE id = ANY(CAST(:ids AS uuid[])) GROUP BY status"
            ),
            {"ids": ids},
        ).all()
    return {r.status: int(r.count) for r in rows}


def test_gateway_answers_long_polls_and_waiting_submits_in_flight_then_exits(
    own_database: str, redis_url: str, engine: Engine, tmp_path: Path
) -> None:
    # Given a gateway without workers, so transfers stay PENDING
    with Stack(own_database, redis_url, tmp_path, processes=("gateway",)) as stack:
        with httpx.Client(base_url=stack.base_url, timeout=40) as http:
            t = signup(http)
            wallet = t.wallet()
            pending = t.transfer(t.system_wallet_id, wallet, "5.00").json()["id"]
            answers: dict[str, httpx.Response | BaseException] = {}

            def ask(name: str, send: Callable[[], httpx.Response]) -> None:
                try:
                    answers[name] = send()
                except BaseException as exc:  # the assertions below report it
                    answers[name] = exc

            poll = functools.partial(t.get, f"/api/v1/transactions/{pending}", params={"wait": 30})
            submit = functools.partial(
                t.post,
                "/api/v1/transactions/transfer",
                leg(t.system_wallet_id, wallet, "6.00"),
                key="waiting-submit",
                params={"wait": 30},
            )
            askers = [
                threading.Thread(target=ask, args=("poll", poll)),
                threading.Thread(target=ask, args=("submit", submit)),
            ]
            for asker in askers:
                asker.start()
            time.sleep(1.0)  # both now wait on the server
            assert not answers

            # When the gateway is told to stop
            stopped_at = time.monotonic()
            code = stack.stop("gateway", timeout_s=SHUTDOWN_TIMEOUT_S + 5)
            for asker in askers:
                asker.join(timeout=10)

    # Then each got its answer, the transfer as it stands, long before its 30 s: the poll
    # a 200, the submit (its transfer stored before it waited) a 202
    polled, submitted = answers["poll"], answers["submit"]
    assert isinstance(polled, httpx.Response), polled
    assert polled.status_code == 200
    assert (polled.json()["id"], polled.json()["status"]) == (pending, "PENDING")
    assert isinstance(submitted, httpx.Response), submitted
    assert (submitted.status_code, submitted.json()["status"]) == (202, "PENDING")
    assert statuses(engine, [submitted.json()["id"]]) == {"PENDING": 1}
    # and the gateway exited cleanly, well inside its shutdown bound
    assert code == 0
    assert time.monotonic() - stopped_at < SHUTDOWN_TIMEOUT_S


def fund(t: Tenant, wallets: list[str]) -> None:
    for wallet in wallets:
        t.deposit(wallet, "100.00")


def test_a_worker_stopped_mid_load_loses_no_transfer(
    own_database: str, redis_url: str, tmp_path: Path, engine: Engine
) -> None:
    with Stack(own_database, redis_url, tmp_path) as stack:
        with httpx.Client(base_url=stack.base_url, timeout=40) as http:
            # Given funded wallets and transfers streaming in from 8 clients
            t = signup(http)
            sources = [t.wallet() for _ in range(4)]
            sink = t.wallet()
            fund(t, sources)
            moves = [(sources[n % 4], sink, "0.01") for n in range(300)]
            with ThreadPoolExecutor(8) as pool:
                submitted = pool.map(lambda m: t.transfer(*m), moves)

                # When the worker group is sent SIGTERM while they are being posted
                time.sleep(0.3)
                stopped_at = time.monotonic()
                code = stack.stop("worker", timeout_s=WORKER_SHUTDOWN_MS / 1000 + 10)
                stop_took = time.monotonic() - stopped_at
                ids = []
                for resp in submitted:
                    assert resp.status_code == 202, resp.text
                    ids.append(resp.json()["id"])

            # Then it exits cleanly within its shutdown bound, having finished what it took
            assert code == 0
            assert stop_took < WORKER_SHUTDOWN_MS / 1000 + 2
            log = stack.logs("worker")
            assert "Worker has been shut down." in log and "Killing" not in log
            assert statuses(engine, ids).get("COMPLETED", 0) > 0  # it was posting when stopped
            # and transfers accepted while no worker runs wait for it
            for move in moves[:50]:
                resp = t.transfer(*move)
                assert resp.status_code == 202, resp.text
                ids.append(resp.json()["id"])
            assert statuses(engine, ids).get("PENDING", 0) >= 50

            # and once restarted, every transfer ends COMPLETED, none twice
            stack.start("worker")
            deadline = time.monotonic() + 60
            while statuses(engine, ids).get("PENDING") and time.monotonic() < deadline:
                time.sleep(0.2)
            assert statuses(engine, ids) == {"COMPLETED": 350}
            assert t.balance(sink) == "3.50"
    with engine.connect() as conn:
        violations = check_invariants(conn, require_final=True)
    assert violations == [], describe(violations)
