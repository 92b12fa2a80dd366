"""CSV exports of statements and transfers: the header, the rows, and flat memory at 100,000."""

from __future__ import annotations

import csv
import io
import tracemalloc
import uuid
from uuid import UUID

import pytest
from aiohttp.test_utils import TestClient
from sqlalchemy import Engine, text

from ledger_core.history import ENTRY_COLUMNS
from ledger_core.persistence.transfers.ledger_generator import generate_ledger
from tests.support.api import API, Account, create_wallet, signup, system_wallet
from tests.support.ledger_sql import post_transfer

pytestmark = [pytest.mark.asyncio, pytest.mark.slow]


async def _csv(
    client: TestClient,
    admin: Account,
    path: str,
    params: dict[str, str] | None = None,
    accept: str | None = None,
) -> list[list[str]]:
    headers = admin.headers | ({} if accept is None else {"Accept": accept})
    resp = await client.get(f"{API}{path}", params=params, headers=headers)
    assert resp.status == 200, await resp.text()
    assert resp.content_type == "text/csv"
    assert resp.headers["Content-Disposition"].startswith("attachment;")
    return list(csv.reader(io.StringIO(await resp.text())))


async def test_statement_csv_by_query_or_accept(client: TestClient, engine: Engine) -> None:
    admin = await signup(client)
    system = await system_wallet(client, admin.token)
    wallet = await create_wallet(client, admin.token)
    post_transfer(engine, system["id"], wallet["id"], 1234)
    post_transfer(engine, wallet["id"], system["id"], 34)
    path = f"/wallets/{wallet['id']}/statement"
    by_query = await _csv(client, admin, path, params={"format": "csv"})
    by_accept = await _csv(client, admin, path, accept="text/csv")
    assert by_query == by_accept
    header, *rows = by_query
    assert header == list(ENTRY_COLUMNS)
    assert [(r[4], r[5], r[7]) for r in rows] == [
        ("CREDIT", "12.34", "12.34"),
        ("DEBIT", "0.34", "12.00"),
    ]


async def test_transfers_csv_keeps_filters_and_defuses_formulas(
    client: TestClient, engine: Engine
) -> None:
    admin = await signup(client)
    system = await system_wallet(client, admin.token)
    wallet = await create_wallet(client, admin.token)
    submitted = []
    for description, tag in (("=HYPERLINK(1)", "a"), ("plain", "b")):
        resp = await client.post(
            f"{API}/transactions/transfer",
            json={
                "source_wallet_id": system["id"],
                "destination_wallet_id": wallet["id"],
                "amount": "5.00",
                "currency": "INR",
                "description": description,
                "metadata": {"tag": tag},
            },
            headers=admin.headers | {"Idempotency-Key": uuid.uuid4().hex},
        )
        assert resp.status == 202
        submitted.append((await resp.json())["id"])
    header, *rows = await _csv(
        client, admin, "/transactions", params={"format": "csv", "metadata[tag]": "a"}
    )
    assert len(rows) == 1
    row = dict(zip(header, rows[0], strict=True))
    assert row["description"] == "'=HYPERLINK(1)" and row["metadata"] == '{"tag":"a"}'
    assert row["amount"] == "5.00" and row["status"] == "PENDING"
    for transaction_id in submitted:  # leave nothing PENDING for later tests' workers
        resp = await client.post(
            f"{API}/transactions/{transaction_id}/cancel", headers=admin.headers
        )
        assert resp.status == 200, await resp.text()


async def _streamed_rows(client: TestClient, admin: Account, path: str) -> tuple[int, int]:
    """Rows read from a CSV download chunk by chunk, and the peak of traced memory."""
    tracemalloc.start()
    try:
        resp = await client.get(f"{API}{path}", params={"format": "csv"}, headers=admin.headers)
        assert resp.status == 200
        lines = 0
        async for chunk in resp.content.iter_chunked(64 * 1024):
            lines += chunk.count(b"\n")
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    return lines - 1, peak


async def test_100000_rows_stream_in_flat_memory(
    large_client: TestClient, large_engine: Engine
) -> None:
    """Two wallets trading 100,000 times: each statement and the transfer list are 100,000
    rows, which as Python rows alone would take far more than the bound."""
    client, engine = large_client, large_engine
    with engine.begin() as conn:
        books = generate_ledger(conn, 200_004, wallets_per_org=2, seed=0.18)
    org = books.organization_ids[0]
    admin = await signup(client)
    with engine.begin() as conn:  # the admin joins the generated books' organization
        conn.execute(
            text("UPDATE users SET organization_id = :org WHERE id = :me"),
            {"org": org, "me": UUID(admin.user["id"])},
        )
        busiest = conn.execute(
            text(
                "SELECT wallet_id, count(*) FROM ledger_entries WHERE organization_id = :org"
                " GROUP BY wallet_id ORDER BY 2 DESC LIMIT 1"
            ),
            {"org": org},
        ).one()
    assert busiest[1] >= 100_000
    rows, peak = await _streamed_rows(client, admin, f"/wallets/{busiest[0]}/statement")
    assert rows == busiest[1]
    assert peak < 12 * 2**20, f"statement export peaked at {peak / 2**20:.1f} MiB"
    rows, peak = await _streamed_rows(client, admin, "/transactions")
    assert rows == books.transactions
    assert peak < 12 * 2**20, f"transfer export peaked at {peak / 2**20:.1f} MiB"
