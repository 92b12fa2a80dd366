"""One tenant never stalls another, over real HTTP, PostgreSQL, Redis and worker processes."""

from __future__ import annotations

import statistics
import time

import httpx
import pytest
from sqlalchemy import Engine, text

from tests.support.ledger_checks import assert_ledger_sound, pending_count, wait_until
from tests.support.stack import Stack
from tests.support.stack_api import Tenant, signup

pytestmark = pytest.mark.slow

MAX_AMOUNT = "92233720368547758.07"
"""2**63 - 1 minor units of USD: the largest amount the API accepts."""
QUIET_TRANSFERS = 5
"""How many transfers the other tenant makes, one after another, during the flood."""
SHARED_MACHINE_BOUND_S = 0.5
"""The flood test's bound for the median of the other tenant's transfers. spec/performance.md's
p99 target is 100 ms on a quiet machine; here they measure 20-90 ms with nothing beside the
test, against the whole flood's drain (seconds to tens of seconds) before fair claiming."""
SHARED_MACHINE_WORST_S = 1.5
"""The bound for the slowest of them: one transfer met 0.57 s with another test loading the
same two cores; a flood that delays other tenants delays every one of them by its drain."""


def posting_latency(engine: Engine, transaction_id: str) -> float:
    """Seconds from a transfer's acceptance to its posting, as the database recorded them."""
    with engine.connect() as conn:
        return float(
            conn.execute(
                text(
                    "SELECT extract(epoch FROM coalesce(posted_at, failed_at) - created_at)"
                    " FROM transactions WHERE id = :id"
                ),
                {"id": transaction_id},
            ).scalar_one()
        )


def test_two_maximal_deposits_from_system_stall_nobody(
    stack: Stack, http: httpx.Client, engine: Engine
) -> None:
    """The reported attack: the second max deposit fails alone, another tenant posts at once."""
    # Given an organization that deposits the largest amount twice from its SYSTEM wallet
    attacker = signup(http)
    first_wallet, second_wallet = attacker.wallet(), attacker.wallet()
    answers = [
        attacker.transfer(attacker.system_wallet_id, w, MAX_AMOUNT)
        for w in (first_wallet, second_wallet)
    ]
    assert [r.status_code for r in answers] == [202, 202]

    # When another organization makes a deposit right after
    victim = signup(http)
    wallet = victim.wallet()
    deposit = victim.deposit(wallet, "10.00")

    # Then it posts promptly, and the attacker's second deposit failed with its own code
    first, second = (attacker.wait_final(r.json()["id"]) for r in answers)
    assert first["status"] == "COMPLETED"
    assert (second["status"], second["failure_code"]) == ("FAILED", "amount_out_of_range")
    assert attacker.balance(first_wallet) == MAX_AMOUNT
    assert attacker.balance(second_wallet) == "0.00"
    assert posting_latency(engine, deposit["id"]) < 2.0
    assert "bigint out of range" not in stack.logs("worker")
    assert_ledger_sound(engine)


def test_a_transfer_that_breaks_the_write_fails_alone(
    stack: Stack, http: httpx.Client, engine: Engine, poisoned_amount: str
) -> None:
    """The database refuses one transfer: it ends posting_error, the others of its batch post."""
    t = signup(http)
    a, b = t.wallet(), t.wallet()
    t.deposit(a, "100.00")
    stack.kill("worker")
    amounts = ["1.00"] * 10 + [poisoned_amount] + ["2.00"] * 10
    accepted = [t.transfer(a, b, amount).json()["id"] for amount in amounts]
    stack.start("worker")

    finals = [t.wait_final(i) for i in accepted]

    assert [(f["status"], f["failure_code"]) for f in finals] == (
        [("COMPLETED", None)] * 10 + [("FAILED", "posting_error")] + [("COMPLETED", None)] * 10
    )
    assert t.balance(b) == "30.00"
    logs = stack.logs("worker")
    assert f"Transfer {accepted[10]} of organization {t.organization_id} could not be" in logs
    try:
        wait_until(
            lambda: "vaultcraft_posting_unwritable_total 1.0" in _worker_metrics(stack),
            timeout_s=30,
            what="the worker group's metrics server, started after its workers, to count it",
        )
    except AssertionError as exc:
        served = [x for x in _worker_metrics(stack).splitlines() if "unwritable" in x]
        told = [x for x in stack.logs("worker").splitlines() if "metrics" in x.lower()]
        raise AssertionError(f"{exc}; it serves {served}; the worker said {told}") from None
    assert_ledger_sound(engine)


def _worker_metrics(stack: Stack) -> str:
    try:
        return httpx.get(f"http://127.0.0.1:{stack.metrics_port('worker')}/metrics").text
    except httpx.TransportError as exc:
        return f"(no answer: {exc})"


def flood(engine: Engine, tenant: Tenant, source: str, destination: str, count: int) -> None:
    """`count` PENDING transfers of one tenant, written straight into the table at once."""
    with engine.begin() as conn:
        conn.execute(
            text("""
            INSERT INTO transactions (organization_id, destination_organization_id,
                idempotency_key, request_hash, kind, source_wallet_id, destination_wallet_id,
                amount, currency, metadata)
            SELECT :o, :o, 'flood-' || n, 'h', 'TRANSFER', :s, :d, 1, 'USD', '{}'
            FROM generate_series(1, :count) AS n
            """),
            {"o": tenant.organization_id, "s": source, "d": destination, "count": count},
        )


def test_a_flood_of_one_tenant_does_not_delay_another(
    stack: Stack, http: httpx.Client, engine: Engine
) -> None:
    """20,000 waiting transfers of one tenant: another's transfers still post at once."""
    # Given a tenant with 20,000 transfers waiting, and the workers busy draining them
    flooder, quiet = signup(http), signup(http)
    sink, wallet = flooder.wallet(), quiet.wallet()
    flood(engine, flooder, flooder.system_wallet_id, sink, 20_000)
    started = time.monotonic()
    try:
        assert flooder.transfer(flooder.system_wallet_id, sink, "1.00").status_code == 202
        time.sleep(0.3)
        assert pending_count(engine, flooder.organization_id) > 1000

        # When the other tenant submits transfers one after another
        latencies = []
        for _ in range(QUIET_TRANSFERS):
            answer = quiet.transfer(quiet.system_wallet_id, wallet, "5.00")
            final = quiet.wait_final(answer.json()["id"])
            assert final["status"] == "COMPLETED"
            latencies.append(posting_latency(engine, final["id"]))

        # Then they post within the latency target, long before the flood is drained
        assert statistics.median(latencies) <= SHARED_MACHINE_BOUND_S, latencies
        assert max(latencies) <= SHARED_MACHINE_WORST_S, latencies
        assert pending_count(engine, flooder.organization_id) > 0
    finally:
        wait_until(
            lambda: pending_count(engine, flooder.organization_id) == 0, 60, "the flood to drain"
        )
    assert time.monotonic() - started < 60
    assert quiet.balance(wallet) == f"{5 * QUIET_TRANSFERS}.00"
    assert_ledger_sound(engine)
