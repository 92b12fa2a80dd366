"""A seeded chaos run: real processes under concurrent load while everything is broken.

Gateway, two posting workers and the relay run as processes over a PostgreSQL server the
test owns and Redis. Client threads submit transfers, batches, cancels and reversals
while a seeded schedule SIGKILLs workers and the gateway, flushes Redis and restarts
PostgreSQL. Then everything is healed and the database alone must show that nothing was
lost (every `202` is final), nothing was doubled, and promises 1-5 hold.

Replay a failure with the printed seed:
`VAULTCRAFT_CHAOS_SEED=<seed> make test PYTEST_ARGS='tests/chaos'`.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest
from sqlalchemy import create_engine

from ledger_core.persistence.invariants import check_invariants, describe
from tests.chaos.conftest import OwnedPostgres
from tests.chaos.faults import KINDS, Injector, schedule
from tests.chaos.workload import API, Workload
from tests.support.ledger_checks import double_postings, pending_count, unfinished, wait_until
from tests.support.stack import Stack

WORKERS = ["worker", "worker.2"]
RUN_SECONDS = int(float(os.environ.get("VAULTCRAFT_CHAOS_SECONDS") or 30))
CLIENT_THREADS = 6


def _guarded(target: Callable[[], None], errors: list[str]) -> threading.Thread:
    def run() -> None:
        try:
            target()
        except Exception as exc:
            errors.append(f"{threading.current_thread().name}: {exc!r}")

    return threading.Thread(target=run)


@pytest.mark.slow
@pytest.mark.timeout(RUN_SECONDS + 600)
def test_chaos_run_loses_nothing_and_doubles_nothing(
    owned_postgres: OwnedPostgres,
    redis_url: str,
    tmp_path: Path,
    chaos_seed: int,
) -> None:
    replay = f"VAULTCRAFT_CHAOS_SEED={chaos_seed} make test PYTEST_ARGS='tests/chaos'"
    print(f"chaos seed {chaos_seed} ({RUN_SECONDS:.0f} s); replay with: {replay}")
    faults = schedule(chaos_seed, RUN_SECONDS, WORKERS, KINDS)
    with Stack(
        owned_postgres.database_url,
        redis_url,
        tmp_path,
        processes=("gateway", *WORKERS, "relay"),
        extra_env={"VAULTCRAFT_PENDING_RESCUE_AFTER_S": "2"},
    ) as stack:
        workload = Workload(stack.base_url, chaos_seed)
        workload.setup(orgs=3, wallets=5)
        injector = Injector(stack, redis_url, owned_postgres.data_dir, WORKERS)
        outage_answers: list[int] = []
        token = workload.orgs[0].token
        injector.while_postgres_down = lambda: outage_answers.append(
            httpx.get(
                stack.base_url + f"{API}/wallets",
                headers={"Authorization": f"Bearer {token}"},
                timeout=15,
            ).status_code
        )

        stop = threading.Event()
        errors: list[str] = []
        threads = [
            _guarded(lambda i=i: workload.run(i, stop), errors) for i in range(CLIENT_THREADS)
        ]
        threads.append(_guarded(lambda: injector.run(faults, stop), errors))
        for thread in threads:
            thread.start()
        time.sleep(RUN_SECONDS)
        stop.set()
        for thread in threads:
            thread.join()

        injector.heal()
        engine = create_engine(owned_postgres.database_url)
        try:
            wait_until(lambda: pending_count(engine) == 0, 180, "every transfer to be final")
            with engine.connect() as conn:
                violations = check_invariants(conn, require_final=True)
                doubled = double_postings(conn)
                lost = unfinished(conn, workload.tally.accepted)
        finally:
            engine.dispose()
        gateway_log = stack.logs("gateway")

    tally = workload.tally
    report = "\n".join(
        [
            f"chaos seed {chaos_seed}; replay with: {replay}",
            "faults:",
            *(f"  {line}" for line in injector.journal),
            f"answers {dict(sorted(tally.statuses.items()))}, no answer {tally.no_answer},"
            f" accepted transfers {len(tally.accepted)}",
            f"503 probes while PostgreSQL was down: {outage_answers}",
        ]
    )
    print(report)
    assert errors == [], f"{errors}\n{report}"
    assert tally.server_errors == [], f"{tally.server_errors[:20]}\n{report}"
    assert set(outage_answers) <= {503}, report
    assert "A request failed unexpectedly" not in gateway_log, report
    assert tally.unexpected == [], f"{tally.unexpected[:20]}\n{report}"
    assert violations == [], f"{describe(violations)}\n{report}"
    assert doubled == [], f"{doubled[:20]}\n{report}"
    assert lost == [], f"accepted but not final: {lost[:20]}\n{report}"
    assert len(tally.accepted) > 100, report
