"""A seeded chaos run: real processes under concurrent load while everything is broken.

Gateway, two posting workers, a webhook worker and the relay run as processes over a
PostgreSQL server the test owns and Redis. The first organizations subscribe a webhook to
their final transfer events, served by a receiver in this test that verifies every
signature. Client threads submit transfers, batches, cancels and reversals while a
seeded schedule SIGKILLs workers and the gateway, flushes Redis, restarts PostgreSQL and
takes the receiver down (refusing, failing, hanging) and back. Then everything is healed
and the database alone must show that nothing was lost (every `202` is final), nothing
was doubled, and promises 1-5 hold; once the retries are done, every final transfer's
event reached its subscriber, correctly signed, and no delivery ran out of attempts
(promise 7).

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

from ledger_core.persistence.reconciliation.invariants import check_invariants, describe
from tests.chaos.conftest import OwnedPostgres
from tests.chaos.faults import DOWN_S, KINDS, Injector, schedule
from tests.chaos.receiver import HookReceiver
from tests.chaos.webhook_checks import (
    TIMEOUT_MS,
    WEBHOOK_ENV,
    failed_deliveries,
    shortest_retry_span_s,
    subscribe,
    subscribed_event_count,
    undelivered,
    wait_settled,
)
from tests.chaos.workload import API, Workload
from tests.support.ledger_checks import double_postings, pending_count, unfinished, wait_until
from tests.support.stack import Stack

WORKERS = ["worker", "worker.2", "webhooks"]
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
    longest_outage_s = max(high for _, high in DOWN_S.values())
    assert shortest_retry_span_s() > 3 * longest_outage_s, "retries must outlast outages"
    with (
        HookReceiver(hang_s=2 * TIMEOUT_MS / 1000) as receiver,
        Stack(
            owned_postgres.database_url,
            redis_url,
            tmp_path,
            processes=("gateway", *WORKERS, "relay"),
            extra_env={"VAULTCRAFT_PENDING_RESCUE_AFTER_S": "2", **WEBHOOK_ENV},
        ) as stack,
    ):
        workload = Workload(stack.base_url, chaos_seed)
        workload.setup(orgs=3, wallets=5)
        subscribed = [org.organization_id for org in workload.orgs]
        subscribe(stack.base_url, workload.tally, workload.orgs, receiver)
        injector = Injector(stack, redis_url, owned_postgres.data_dir, WORKERS, receiver)
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
        healed = time.monotonic()
        engine = create_engine(owned_postgres.database_url)
        try:
            wait_until(lambda: pending_count(engine) == 0, 180, "every transfer to be final")
            with engine.connect() as conn:
                violations = check_invariants(conn, require_final=True)
                doubled = double_postings(conn)
                lost = unfinished(conn, workload.tally.accepted)
            final_after_s = time.monotonic() - healed
            unsettled_left = wait_settled(engine, timeout_s=180)
            settled_after_s = time.monotonic() - healed
            with engine.connect() as conn:
                missed = undelivered(conn, receiver, subscribed)
                failed = failed_deliveries(conn)
                events = subscribed_event_count(conn, subscribed)
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
            f"after healing: transfers final in {final_after_s:.1f}s,"
            f" webhook deliveries ended in {settled_after_s:.1f}s",
            f"webhook events of subscribers {events}; receiver answered"
            f" {dict(receiver.answers)}, bad requests {len(receiver.bad)}",
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
    assert unsettled_left == 0, f"{unsettled_left} events or deliveries unfinished\n{report}"
    assert receiver.bad == [], f"{receiver.bad[:20]}\n{report}"
    assert missed == [], f"{len(missed)} events never delivered: {missed[:20]}\n{report}"
    assert failed == [], f"{len(failed)} deliveries FAILED: {failed[:20]}\n{report}"
    assert events > 50, report
