"""The reconciliation routes over HTTP, with a real worker taking runs off the `jobs` queue.

Each test has its own database (reconciliation reads all of it), a gateway over it, and a
Dramatiq worker in this process consuming `jobs` through the test Redis.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any
from uuid import UUID

import pytest
import pytest_asyncio
from aiohttp import web
from aiohttp.test_utils import TestClient
from dramatiq import Worker
from dramatiq.brokers.redis import RedisBroker
from sqlalchemy import Engine, text

from gateway.app import create_app
from runtime.settings import Settings
from tests.reconciliation.books import Books
from tests.support.api import API, Account, add_user, create_wallet, expect_problem, signup
from tests.support.fixtures import JWT_SECRET

pytestmark = pytest.mark.asyncio


@pytest.fixture
def jobs_worker(
    broker: RedisBroker, db: Engine, settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Worker]:
    """A `jobs` worker whose engine and settings point at this test's database."""
    import workers.bootstrap  # noqa: F401  (declares the actors on the test broker)
    from workers import db as worker_db

    monkeypatch.setattr(worker_db, "_engine", db)
    monkeypatch.setattr(worker_db, "_settings", settings)
    worker = Worker(broker, worker_timeout=100, worker_threads=1, queues={"jobs"})
    worker.start()
    yield worker
    worker.stop()


@pytest_asyncio.fixture
async def client(
    aiohttp_client: Callable[[web.Application], Awaitable[TestClient]],
    fresh_url: str,
    redis_url: str,
    tmp_path: Path,
    jobs_worker: Worker,
) -> AsyncIterator[TestClient]:
    app_settings = Settings.from_env(
        {
            "DATABASE_URL": fresh_url,
            "REDIS_URL": redis_url,
            "VAULTCRAFT_DATA_DIR": str(tmp_path),
            "VAULTCRAFT_JWT_SECRET": JWT_SECRET,
            "VAULTCRAFT_BCRYPT_ROUNDS": "4",
        }
    )
    yield await aiohttp_client(create_app(app_settings))


async def funded_org(client: TestClient, books: Books) -> tuple[Account, UUID, UUID]:
    """A USD organization with a PRIMARY wallet funded with 10.00 from its SYSTEM wallet."""
    admin = await signup(client, currency="USD")
    wallet = UUID((await create_wallet(client, admin.token, currency="USD"))["id"])
    resp = await client.get(f"{API}/wallets", params={"type": "SYSTEM"}, headers=admin.headers)
    system = UUID((await resp.json())["data"][0]["id"])
    books.transfer(system, wallet, 1000)
    return admin, system, wallet


async def request_run(client: TestClient, who: Account, body: Any = None) -> dict[str, Any]:
    resp = await client.post(f"{API}/reconciliations", json=body, headers=who.headers)
    assert resp.status == 202, await resp.text()
    run: dict[str, Any] = await resp.json()
    assert resp.headers["Location"] == f"{API}/reconciliations/{run['id']}"
    return run


async def finished(client: TestClient, who: Account, run_id: str) -> dict[str, Any]:
    """Poll the run until a worker has finished it."""
    for _ in range(300):
        resp = await client.get(f"{API}/reconciliations/{run_id}", headers=who.headers)
        assert resp.status == 200, await resp.text()
        run: dict[str, Any] = await resp.json()
        if run["status"] in {"COMPLETED", "FAILED"}:
            return run
        await asyncio.sleep(0.1)
    raise AssertionError(f"run {run_id} did not finish: {run}")


async def test_a_requested_run_completes_and_a_clean_ledger_reports_nothing(
    client: TestClient, books: Books, db: Engine
) -> None:
    # Given an organization with a funded wallet
    admin, _, _ = await funded_org(client, books)

    # When its admin asks for a run without a body
    accepted = await request_run(client, admin)

    # Then the run is accepted as a PENDING FULL run, and a worker completes it
    assert (accepted["status"], accepted["mode"]) == ("PENDING", "FULL")
    assert accepted["requested_by"] == admin.user["id"]
    run = await finished(client, admin, accepted["id"])
    assert run["status"] == "COMPLETED"
    assert (run["wallets_checked"], run["entries_checked"]) == (2, 2)
    assert (run["discrepancy_count"], run["discrepancies"]) == (0, [])
    assert run["started_at"] <= run["finished_at"]
    # and the request is in the audit trail
    with db.connect() as conn:
        audit = conn.execute(
            text("SELECT actor_id, details FROM audit_logs WHERE action = :a"),
            {"a": "reconciliation.requested"},
        ).one()
    assert (str(audit.actor_id), audit.details) == (admin.user["id"], {"mode": "FULL"})


async def test_drift_is_reported_to_its_own_organization_only(
    client: TestClient, books: Books
) -> None:
    # Given three organizations, and an entry of Globex's altered behind the ledger's back
    acme, _, _ = await funded_org(client, books)
    globex, globex_system, globex_wallet = await funded_org(client, books)
    initech, _, _ = await funded_org(client, books)
    books.tamper(
        "UPDATE ledger_entries SET amount = amount + 7 WHERE wallet_id = :w", w=globex_wallet
    )

    # When Acme's admin asks for an incremental run
    accepted = await request_run(client, acme, {"mode": "INCREMENTAL"})
    assert accepted["mode"] == "INCREMENTAL"
    run = await finished(client, acme, accepted["id"])

    # Then Acme sees a completed run over the whole ledger, and nothing of Globex's
    assert (run["status"], run["wallets_checked"], run["entries_checked"]) == ("COMPLETED", 6, 6)
    assert (run["discrepancy_count"], run["discrepancies"]) == (0, [])
    assert globex.org["id"] not in json.dumps(run) and str(globex_wallet) not in json.dumps(run)
    # and Globex, told by the run's drift event, reads the same run with its own drift
    theirs = await finished(client, globex, accepted["id"])
    assert theirs["requested_by"] is None  # asked for by another tenant's user
    found = {d["kind"]: d for d in theirs["discrepancies"]}
    assert theirs["discrepancy_count"] == len(theirs["discrepancies"]) == len(found)
    assert set(found) == {
        "balance_mismatch",
        "balance_chain_broken",
        "unbalanced_transaction",
    }
    mismatch = found["balance_mismatch"]
    assert (mismatch["wallet_id"], mismatch["currency"]) == (str(globex_wallet), "USD")
    assert (mismatch["expected"], mismatch["actual"], mismatch["unit"]) == (
        "10.07",
        "10.00",
        "money",
    )
    unbalanced = found["unbalanced_transaction"]
    assert (unbalanced["expected"], unbalanced["actual"]) == ("10.00", "10.07")
    # and in the list, each organization counts only its own findings
    counts = {}
    for who in (acme, globex):
        resp = await client.get(f"{API}/reconciliations", headers=who.headers)
        [listed] = (await resp.json())["data"]
        counts[who.org["id"]] = listed["discrepancy_count"]
    assert counts == {acme.org["id"]: 0, globex.org["id"]: 3}
    assert str(globex_system) not in json.dumps(run)
    # but to Initech, neither asking nor concerned, Acme's run does not exist
    resp = await client.get(f"{API}/reconciliations/{accepted['id']}", headers=initech.headers)
    await expect_problem(resp, 404, "not_found")
    resp = await client.get(f"{API}/reconciliations", headers=initech.headers)
    assert (await resp.json())["data"] == []


async def test_scheduled_runs_are_visible_to_every_admin(
    client: TestClient, books: Books, broker: RedisBroker
) -> None:
    from messaging.messages import request_reconciliation as schedule_run

    # Given two organizations, one with a wallet whose stored balance was raised
    acme, _, _ = await funded_org(client, books)
    globex, _, globex_wallet = await funded_org(client, books)
    books.tamper("UPDATE wallets SET balance = balance + 5 WHERE id = :w", w=globex_wallet)

    # When the scheduler asks for a run (no run id: the worker records it)
    schedule_run(broker, "full")

    # Then both admins list it, each with only their own findings
    seen = {}
    for who in (acme, globex):
        for _ in range(300):
            resp = await client.get(f"{API}/reconciliations", headers=who.headers)
            data = (await resp.json())["data"]
            if data and data[0]["status"] == "COMPLETED":
                break
            await asyncio.sleep(0.1)
        [run] = data
        assert (run["mode"], run["requested_by"]) == ("FULL", None)
        seen[who.org["id"]] = (run["id"], run["discrepancy_count"])
    assert seen[acme.org["id"]][0] == seen[globex.org["id"]][0]
    assert (seen[acme.org["id"]][1], seen[globex.org["id"]][1]) == (0, 2)
    report = await finished(client, globex, seen[globex.org["id"]][0])
    assert {d["kind"] for d in report["discrepancies"]} == {
        "balance_mismatch",
        "organization_sum_nonzero",
    }


async def test_runs_are_listed_newest_first_with_cursors(client: TestClient) -> None:
    admin = await signup(client, currency="USD")
    first = await request_run(client, admin, {"mode": "INCREMENTAL"})
    second = await request_run(client, admin, {"mode": "FULL"})

    resp = await client.get(f"{API}/reconciliations", params={"limit": 1}, headers=admin.headers)
    page = await resp.json()
    assert [r["id"] for r in page["data"]] == [second["id"]]
    resp = await client.get(
        f"{API}/reconciliations",
        params={"limit": 1, "cursor": page["next_cursor"]},
        headers=admin.headers,
    )
    rest = await resp.json()
    assert [r["id"] for r in rest["data"]] == [first["id"]]
    assert rest["next_cursor"] is None
    for run in (first, second):
        await finished(client, admin, run["id"])


async def test_members_are_refused_and_unknown_runs_are_404(client: TestClient) -> None:
    admin = await signup(client, currency="USD")
    member = await add_user(client, admin.token)
    run = await request_run(client, admin)

    for method, path in (
        ("POST", f"{API}/reconciliations"),
        ("GET", f"{API}/reconciliations"),
        ("GET", f"{API}/reconciliations/{run['id']}"),
    ):
        resp = await client.request(method, path, headers=member.headers)
        await expect_problem(resp, 403, "forbidden")
    resp = await client.get(f"{API}/reconciliations/{uuid.uuid4()}", headers=admin.headers)
    await expect_problem(resp, 404, "not_found")
    await finished(client, admin, run["id"])


async def test_a_bad_mode_is_422(client: TestClient) -> None:
    admin = await signup(client, currency="USD")

    for body in ({"mode": "SIDEWAYS"}, {"mode": "full"}, {"full": True}, []):
        resp = await client.post(f"{API}/reconciliations", json=body, headers=admin.headers)
        await expect_problem(resp, 422, "validation_error")
    resp = await client.get(f"{API}/reconciliations", headers=admin.headers)
    assert (await resp.json())["data"] == []
