"""The audit trail: each sensitive action recorded with its context, append-only, chained."""

from __future__ import annotations

import hashlib
import json
import threading
import uuid
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from aiohttp.test_utils import TestClient
from sqlalchemy import Connection, Engine, text
from sqlalchemy.exc import DBAPIError

from ledger_core.persistence.audit.chain import hash_at, verify_chain
from ledger_core.persistence.audit.records import AuditContext, audit_insert
from ledger_core.timestamps import rfc3339
from tests.support.api import (
    API,
    PASSWORD,
    add_user,
    auth_headers,
    create_wallet,
    expect_problem,
    signup,
    unique_email,
)
from tests.support.audit import seal_everything, unsealed
from tests.support.ledger import create_book
from workers.audit_sealer import seal_all

UA = "audit-test/1.0"


def headers(request_id: str, token: str | None = None) -> dict[str, str]:
    found = {"User-Agent": UA, "X-Request-ID": request_id}
    return {**found, **auth_headers(token)} if token else found


async def audit_page(client: TestClient, token: str, **params: str) -> dict[str, Any]:
    resp = await client.get(f"{API}/audit-logs", params=params, headers=auth_headers(token))
    assert resp.status == 200, await resp.text()
    page: dict[str, Any] = await resp.json()
    return page


def latest_event_id(engine: Engine, wallet_id: str) -> str:
    with engine.connect() as conn:
        found = conn.scalar(
            text("SELECT event_id FROM outbox WHERE data->>'id' = :w ORDER BY id DESC LIMIT 1"),
            {"w": wallet_id},
        )
    return str(found)


@contextmanager
def behind_the_triggers_back(engine: Engine) -> Iterator[Connection]:
    """A transaction in which the append-only triggers are off: what an intruder might do."""
    with engine.begin() as conn:
        conn.execute(text("ALTER TABLE audit_logs DISABLE TRIGGER USER"))
        conn.execute(text("ALTER TABLE audit_seals DISABLE TRIGGER USER"))
        yield conn
        conn.execute(text("ALTER TABLE audit_seals ENABLE TRIGGER USER"))
        conn.execute(text("ALTER TABLE audit_logs ENABLE TRIGGER USER"))


def write_records(engine: Engine, ctx: AuditContext, numbers: Iterable[int]) -> list[int]:
    """One `wallet.created` record for each number, in one transaction; their ids."""
    with engine.begin() as conn:
        return [
            conn.execute(
                audit_insert(ctx, "wallet.created", details={"n": n}).returning(text("id"))
            ).scalar_one()
            for n in numbers
        ]


@pytest.mark.asyncio
async def test_each_sensitive_action_is_recorded_with_its_context(
    hooks_client: TestClient, engine: Engine
) -> None:
    client = hooks_client
    email = unique_email("audited")
    signed = await (
        await client.post(
            f"{API}/auth/signup",
            json={"email": email, "password": PASSWORD, "full_name": "A", "organization_name": "O"},
            headers=headers("req-signup"),
        )
    ).json()
    token, org_id, admin_id = (
        signed["access_token"],
        signed["organization"]["id"],
        signed["user"]["id"],
    )
    bad = {"email": email, "password": "not the password"}
    await client.post(f"{API}/auth/login", json=bad, headers=headers("req-login-bad"))
    good = {"email": email, "password": PASSWORD}
    await client.post(f"{API}/auth/login", json=good, headers=headers("req-login"))
    member = await add_user(client, token)
    wallet = await create_wallet(client, token)
    lock = {"status": "LOCKED"}
    resp = await client.patch(
        f"{API}/wallets/{wallet['id']}", json=lock, headers=headers("req-lock", token)
    )
    assert resp.status == 200
    resp = await client.post(
        f"{API}/webhooks",
        json={"url": "http://127.0.0.1:9/audit", "events": ["wallet.status_changed"]},
        headers=headers("req-hook", token),
    )
    hook = await resp.json()
    event_id = latest_event_id(engine, wallet["id"])
    resp = await client.post(
        f"{API}/events/{event_id}/redeliver", headers=headers("req-redeliver", token)
    )
    assert resp.status == 202
    resp = await client.delete(f"{API}/webhooks/{hook['id']}", headers=headers("req-unhook", token))
    assert resp.status == 204

    records = (await audit_page(client, token, limit="200"))["data"]
    by_request = {r["request_id"]: r for r in records}
    expected = {
        "req-signup": ("auth.signup", admin_id, "organization"),
        "req-login-bad": ("auth.login_failed", None, "user"),
        "req-login": ("auth.login_succeeded", admin_id, "user"),
        "req-lock": ("wallet.status_changed", admin_id, "wallet"),
        "req-hook": ("webhook.created", admin_id, "webhook"),
        "req-redeliver": ("event.redelivered", admin_id, "event"),
        "req-unhook": ("webhook.deleted", admin_id, "webhook"),
    }
    for request_id, (action, actor, resource_type) in expected.items():
        record = by_request[request_id]
        assert (record["action"], record["actor_id"]) == (action, actor), record
        assert record["resource_type"] == resource_type
        assert record["organization_id"] == org_id
        assert record["client_address"] == "127.0.0.1"
        assert record["user_agent"] == UA
        assert record["created_at"].endswith("Z")
    actions = {r["action"] for r in records}
    assert {"user.created", "wallet.created"} <= actions
    assert by_request["req-login-bad"]["details"]["reason"] == "wrong_password"
    assert by_request["req-lock"]["details"] == {"from": "ACTIVE", "to": "LOCKED"}
    assert by_request["req-lock"]["resource_id"] == wallet["id"]
    assert by_request["req-hook"]["details"]["url"] == "http://127.0.0.1:9/audit"
    assert by_request["req-redeliver"]["resource_id"] == event_id
    assert len(by_request["req-redeliver"]["details"]["deliveries"]) == 1
    assert by_request["req-unhook"]["resource_id"] == hook["id"]
    assert not any("secret" in str(r["details"]) for r in records)
    ids = [r["id"] for r in records]
    assert ids == sorted(ids, reverse=True)

    only = (await audit_page(client, token, action="webhook.created"))["data"]
    assert [r["request_id"] for r in only] == ["req-hook"]
    theirs = (await audit_page(client, token, actor_id=member.user["id"]))["data"]
    assert theirs and {r["actor_id"] for r in theirs} == {member.user["id"]}
    future = (datetime.now(UTC) + timedelta(hours=1)).isoformat()
    assert (await audit_page(client, token, **{"from": future}))["data"] == []
    assert len((await audit_page(client, token, to=future, limit="200"))["data"]) == len(records)

    first = await audit_page(client, token, limit="3")
    second = await audit_page(client, token, limit="3", cursor=first["next_cursor"])
    assert [r["id"] for r in first["data"] + second["data"]] == ids[:6]

    await expect_problem(
        await client.get(f"{API}/audit-logs", headers=member.headers), 403, "forbidden"
    )
    rival = await signup(client)
    seen = (await audit_page(client, rival.token, limit="200"))["data"]
    assert {r["organization_id"] for r in seen} == {rival.org["id"]}


@pytest.mark.asyncio
async def test_audit_queries_refuse_bad_filters(client: TestClient) -> None:
    admin = await signup(client)
    for params in (
        {"from": "yesterday"},
        {"to": "2026-01-01T00:00:00"},  # no offset: ambiguous
        {"actor_id": "nope"},
        {"action": "x" * 65},
    ):
        resp = await client.get(f"{API}/audit-logs", params=params, headers=admin.headers)
        await expect_problem(resp, 422, "validation_error")
    resp = await client.get(
        f"{API}/audit-logs", params={"cursor": "bm90IGEgY3Vyc29y"}, headers=admin.headers
    )
    await expect_problem(resp, 400, "invalid_cursor")


def test_records_cannot_be_updated_or_deleted_in_the_database(engine: Engine) -> None:
    book = create_book(engine, 0)
    ctx = AuditContext(organization_id=book.organization_id, request_id="immutable")
    with engine.begin() as conn:
        record_id = conn.execute(
            audit_insert(ctx, "wallet.created", details={"n": 1}).returning(text("id"))
        ).scalar_one()

    for statement in (
        "UPDATE audit_logs SET action = 'nothing.happened' WHERE id = :id",
        "UPDATE audit_logs SET details = '{}' WHERE id = :id",
        "UPDATE audit_logs SET action = action WHERE id = :id",
        "DELETE FROM audit_logs WHERE id = :id",
        "TRUNCATE audit_logs CASCADE",
    ):
        with pytest.raises(DBAPIError, match="append-only"), engine.begin() as conn:
            conn.execute(text(statement), {"id": record_id})

    seal_everything(engine)
    with engine.connect() as conn:
        row = conn.execute(
            text(
                "SELECT a.action, s.chain_seq, s.hash FROM audit_logs a"
                " JOIN audit_seals s ON s.record_id = a.id WHERE a.id = :id"
            ),
            {"id": record_id},
        ).one()
    assert row.action == "wallet.created" and row.chain_seq == 1 and len(row.hash) == 64
    for statement in (
        "UPDATE audit_seals SET hash = repeat('0', 64) WHERE record_id = :id",
        "DELETE FROM audit_seals WHERE record_id = :id",
        "TRUNCATE audit_seals",
        "INSERT INTO audit_seals (record_id, organization_id, chain_seq, prev_hash, hash)"
        " SELECT record_id, organization_id, chain_seq + 1, prev_hash, hash FROM audit_seals"
        " WHERE record_id = :id",  # a second seal of one record
    ):
        with pytest.raises(DBAPIError, match=r"append-only|duplicate key"), engine.begin() as conn:
            conn.execute(text(statement), {"id": record_id})


def test_a_record_that_commits_late_is_sealed_after_those_before_it(engine: Engine) -> None:
    """A record written by a transaction that began earlier but commits later must not be
    skipped: the sealer waits for that transaction, then seals it before the record of
    the transaction that began after it."""
    book = create_book(engine, 0)
    ctx = AuditContext(organization_id=book.organization_id)
    seal_everything(engine)
    with engine.connect() as late:
        late.begin()
        late_id = late.execute(
            audit_insert(ctx, "wallet.created", details={"n": "late"}).returning(text("id"))
        ).scalar_one()
        with engine.begin() as conn:
            early_id = conn.execute(
                audit_insert(ctx, "wallet.created", details={"n": "early"}).returning(text("id"))
            ).scalar_one()
        assert late_id < early_id
        seal_all(engine)
        assert unsealed(engine) == 1  # the committed record waits for the open transaction
        late.commit()
    seal_everything(engine)

    with engine.connect() as conn:
        order = (
            conn.execute(
                text(
                    "SELECT s.record_id FROM audit_seals s WHERE s.organization_id = :o"
                    " ORDER BY s.chain_seq"
                ),
                {"o": book.organization_id},
            )
            .scalars()
            .all()
        )
        assert verify_chain(conn, book.organization_id).verified
    assert order == [late_id, early_id]


@pytest.mark.asyncio
async def test_verify_reports_the_first_tampered_or_removed_record(
    client: TestClient, engine: Engine
) -> None:
    admin = await signup(client)
    for _ in range(4):
        await create_wallet(client, admin.token)
    seal_everything(engine)

    resp = await client.get(f"{API}/audit-logs/verify", headers=admin.headers)
    report = await resp.json()
    assert report == {
        "verified": True,
        "records_checked": 5,  # signup and four wallets
        "unsealed_records": 0,
        "first_broken": None,
    }
    records = (await audit_page(client, admin.token))["data"]
    victim = next(r for r in records if r["chain_seq"] == 3)
    with behind_the_triggers_back(engine) as conn:
        conn.execute(
            text('UPDATE audit_logs SET details = \'{"type": "BONUS"}\' WHERE id = :id'),
            {"id": victim["id"]},
        )

    report = await (await client.get(f"{API}/audit-logs/verify", headers=admin.headers)).json()

    assert report["verified"] is False
    broken = report["first_broken"]
    assert (broken["id"], broken["chain_seq"]) == (victim["id"], 3)
    assert broken["actual_hash"] == victim["hash"] != broken["expected_hash"]
    member = await add_user(client, admin.token)
    resp = await client.get(f"{API}/audit-logs/verify", headers=member.headers)
    await expect_problem(resp, 403, "forbidden")

    other = await signup(client)
    for _ in range(3):
        await create_wallet(client, other.token)
    seal_everything(engine)
    chain = sorted((await audit_page(client, other.token))["data"], key=lambda r: r["chain_seq"])
    with behind_the_triggers_back(engine) as conn:
        removed = {"id": chain[1]["id"]}
        conn.execute(text("DELETE FROM audit_seals WHERE record_id = :id"), removed)
        conn.execute(text("DELETE FROM audit_logs WHERE id = :id"), removed)
    report = await (await client.get(f"{API}/audit-logs/verify", headers=other.headers)).json()
    assert report["verified"] is False
    assert report["first_broken"]["id"] == chain[2]["id"]


def test_a_removed_newest_record_breaks_its_chain_and_its_head(engine: Engine) -> None:
    """The newest record removed and its seal left: nothing comes after it to break, so the
    seal itself must report the missing record, and the head must no longer match."""
    book = create_book(engine, 0)
    ctx = AuditContext(organization_id=book.organization_id)
    ids = write_records(engine, ctx, range(3))
    seal_everything(engine)
    with behind_the_triggers_back(engine) as conn:
        conn.execute(text("DELETE FROM audit_logs WHERE id = :id"), {"id": ids[-1]})

    with engine.connect() as conn:
        report = verify_chain(conn, book.organization_id)
        assert hash_at(conn, book.organization_id, 3) is None
    assert not report.verified and report.records_checked == 2
    assert report.first_broken is not None
    assert (report.first_broken.id, report.first_broken.chain_seq) == (ids[-1], 3)


def test_records_are_sealed_after_the_database_moves_to_another_server(engine: Engine) -> None:
    """Restored on another server, the cursor is ahead of that server's transaction ids and
    new records sort behind it. The sealer notices, seals each of them once, and goes on."""
    book = create_book(engine, 0)
    ctx = AuditContext(organization_id=book.organization_id)
    seal_everything(engine)
    with engine.begin() as conn:
        conn.execute(
            text(
                "UPDATE audit_seal_cursor SET txid = CAST("
                " CAST(CAST(pg_current_xact_id() AS text) AS bigint) + 1000000 AS text)::xid8"
            )
        )
    stranded = write_records(engine, ctx, range(3))
    seal_everything(engine)
    later = write_records(engine, ctx, [3])
    seal_everything(engine)

    with engine.connect() as conn:
        order = (
            conn.execute(
                text(
                    "SELECT record_id FROM audit_seals WHERE organization_id = :o ORDER BY chain_seq"
                ),
                {"o": book.organization_id},
            )
            .scalars()
            .all()
        )
        assert verify_chain(conn, book.organization_id).verified
        moved = conn.scalar(
            text("SELECT txid >= pg_snapshot_xmin(pg_current_snapshot()) FROM audit_seal_cursor")
        )
    assert order == [*stranded, *later]
    assert moved is False


def test_concurrent_sealers_build_each_chain_once_and_in_order(engine: Engine) -> None:
    books = [create_book(engine, 0) for _ in range(3)]
    with engine.begin() as conn:
        for n in range(200):
            for book in books:
                ctx = AuditContext(organization_id=book.organization_id, actor_id=uuid.uuid4())
                conn.execute(audit_insert(ctx, "wallet.created", details={"n": n}))
    barrier = threading.Barrier(4)

    def sealer() -> None:
        barrier.wait()
        seal_all(engine)

    threads = [threading.Thread(target=sealer) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    seal_everything(engine)  # whatever a skipped round left for the next

    for book in books:
        with engine.connect() as conn:
            report = verify_chain(conn, book.organization_id)
            seqs = conn.scalars(
                text(
                    "SELECT s.chain_seq FROM audit_logs a JOIN audit_seals s ON s.record_id = a.id"
                    " WHERE a.organization_id = :o ORDER BY a.id"
                ),
                {"o": book.organization_id},
            ).all()
        assert report.verified and report.records_checked == 200, report
        assert seqs == list(range(1, 201))


TRICKY_DETAILS = [
    {"kind": "TRANSFER", "amount": "12.50", "currency": "USD"},
    {"f": 1.5, "tiny": 1e-7, "big_float": 1e16, "one": 1.0, "neg": -0.0},
    {"big": 2**64, "bigger": 10**30, "negative": -(2**63) - 1, "edge": 2**64 - 1},
    {"text": 'q"uote \\ back \u2028 \U0001f600 \x01 \x1f \x7f \u00e9', "\u00e9": "key"},
    {"nested": {"b": [1, {"z": None, "a": True}], "a": []}, "list": [[], {}, "x"]},
    {},
]


def test_sealed_hashes_are_the_standard_library_formula(engine: Engine) -> None:
    """Each seal is sha256(prev_hash + json.dumps(body, sort_keys=True, separators=(",", ":"),
    ensure_ascii=False)), the formula every stored chain was built with, whatever the
    details hold (floats and big integers included)."""
    book = create_book(engine, 0)
    with engine.begin() as conn:
        for n, details in enumerate(TRICKY_DETAILS):
            actor = uuid.uuid4() if n % 2 else None
            ctx = AuditContext(
                organization_id=book.organization_id,
                actor_id=actor,
                client_address="10.0.0.1" if n % 2 else None,
                user_agent="ua \u2028",
                request_id=f"req-{n}",
            )
            conn.execute(
                audit_insert(ctx, "test.tricky", resource_type="t", resource_id=n, details=details)
            )
    seal_everything(engine)

    with engine.connect() as conn:
        rows = conn.execute(
            text(
                "SELECT a.*, s.chain_seq, s.prev_hash, s.hash FROM audit_logs a"
                " JOIN audit_seals s ON s.record_id = a.id"
                " WHERE a.organization_id = :o ORDER BY s.chain_seq"
            ),
            {"o": book.organization_id},
        ).all()
        assert verify_chain(conn, book.organization_id).verified
    prev = "0" * 64
    for seq, row in enumerate(rows, start=1):
        body = {
            "id": row.id,
            "chain_seq": seq,
            "organization_id": str(row.organization_id),
            "actor_id": None if row.actor_id is None else str(row.actor_id),
            "action": row.action,
            "resource_type": row.resource_type,
            "resource_id": row.resource_id,
            "client_address": row.client_address,
            "user_agent": row.user_agent,
            "request_id": row.request_id,
            "details": row.details,
            "created_at": rfc3339(row.created_at),
        }
        canonical = json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
        expected = hashlib.sha256(prev.encode() + canonical.encode()).hexdigest()
        assert (row.chain_seq, row.prev_hash, row.hash) == (seq, prev, expected)
        prev = expected
    assert [row.details for row in rows] == json.loads(json.dumps(TRICKY_DETAILS))
