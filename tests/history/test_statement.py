"""`GET /wallets/{id}/statement`: a range of entries and what it sums to, over real HTTP."""

from __future__ import annotations

import random
from collections.abc import Iterator
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import Engine

from runtime.settings import Settings
from tests.support.ledger_sql import post_transfer
from tests.support.live_server import LiveGateway

API = "/api/v1"


@pytest.fixture
def live(api_settings: Settings) -> Iterator[httpx.Client]:
    with LiveGateway(api_settings) as base_url, httpx.Client(base_url=base_url) as http:
        yield http


def _signup(http: httpx.Client) -> dict[str, str]:
    email = f"history-{random.getrandbits(48):x}@example.com"
    resp = http.post(
        f"{API}/auth/signup",
        json={
            "email": email,
            "password": "correct horse battery",
            "full_name": "Ada Admin",
            "organization_name": "Hist",
        },
    )
    assert resp.status_code == 201, resp.text
    return {"Authorization": f"Bearer {resp.json()['access_token']}"}


def _wallets(http: httpx.Client, headers: dict[str, str]) -> tuple[str, str]:
    system = http.get(f"{API}/wallets", params={"type": "SYSTEM"}, headers=headers).json()
    wallet = http.post(f"{API}/wallets", json={"type": "PRIMARY"}, headers=headers).json()
    return system["data"][0]["id"], wallet["id"]


def _statement(http: httpx.Client, headers: dict[str, str], wallet_id: str, **params: Any) -> Any:
    resp = http.get(f"{API}/wallets/{wallet_id}/statement", params=params, headers=headers)
    assert resp.status_code == 200, resp.text
    return resp.json()


def _all_pages(
    http: httpx.Client, headers: dict[str, str], wallet_id: str, **params: Any
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    first = page = _statement(http, headers, wallet_id, **params)
    entries = list(page["data"])
    moving = {"data", "next_cursor"} | ({"to"} if "to" not in params else set())
    while page["next_cursor"] is not None:
        page = _statement(http, headers, wallet_id, cursor=page["next_cursor"], **params)
        assert {k: v for k, v in page.items() if k not in moving} == {
            k: v for k, v in first.items() if k not in moving
        }
        entries += page["data"]
    return first, entries


@pytest.fixture
def ledger(
    live: httpx.Client, engine: Engine
) -> tuple[httpx.Client, dict[str, str], str, list[dict[str, Any]]]:
    """A wallet with 12 postings in and out, and its entries as the API lists them."""
    headers = _signup(live)
    system_id, wallet_id = _wallets(live, headers)
    rng = random.Random(18)
    balance = 0
    for _ in range(12):
        amount = rng.randint(1, 5000)
        if balance >= amount and rng.random() < 0.4:
            post_transfer(engine, wallet_id, system_id, amount)
            balance -= amount
        else:
            post_transfer(engine, system_id, wallet_id, amount)
            balance += amount
    entries = live.get(
        f"{API}/wallets/{wallet_id}/entries", params={"limit": 200}, headers=headers
    ).json()["data"]
    assert len(entries) == 12
    return live, headers, wallet_id, entries


def _signed(entry: dict[str, Any]) -> Decimal:
    amount = Decimal(entry["amount"])
    return amount if entry["direction"] == "CREDIT" else -amount


def test_a_range_with_its_opening_and_closing_balances(ledger: Any) -> None:
    http, headers, wallet_id, entries = ledger
    start, end = entries[3]["created_at"], entries[9]["created_at"]
    body = _statement(http, headers, wallet_id, **{"from": start, "to": end})
    assert body["wallet_id"] == wallet_id and body["currency"] == "INR"
    assert [e["id"] for e in body["data"]] == [e["id"] for e in entries[3:9]]
    assert body["opening_balance"] == entries[2]["balance_after"]
    assert body["closing_balance"] == entries[8]["balance_after"]
    debits = sum(Decimal(e["amount"]) for e in entries[3:9] if e["direction"] == "DEBIT")
    credits = sum(Decimal(e["amount"]) for e in entries[3:9] if e["direction"] == "CREDIT")
    assert Decimal(body["total_debits"]) == debits
    assert Decimal(body["total_credits"]) == credits
    assert body["next_cursor"] is None


def test_defaults_cover_the_wallets_whole_life(ledger: Any) -> None:
    http, headers, wallet_id, entries = ledger
    head, data = _all_pages(http, headers, wallet_id, limit=5)
    assert [e["id"] for e in data] == [e["id"] for e in entries]
    assert head["opening_balance"] == "0.00"
    assert head["closing_balance"] == entries[-1]["balance_after"]


def test_refuses_a_range_that_runs_backwards(ledger: Any) -> None:
    http, headers, wallet_id, entries = ledger
    resp = http.get(
        f"{API}/wallets/{wallet_id}/statement",
        params={"from": entries[5]["created_at"], "to": entries[1]["created_at"]},
        headers=headers,
    )
    assert resp.status_code == 422 and resp.json()["code"] == "invalid_request"


def test_opening_plus_credits_minus_debits_is_closing(ledger: Any) -> None:
    """Whatever range and page size: the totals reconcile, and agree with the entries."""
    http, headers, wallet_id, entries = ledger
    instants = [datetime.fromisoformat(e["created_at"]) for e in entries]
    span = (instants[-1] - instants[0]) + timedelta(seconds=2)
    origin = instants[0] - timedelta(seconds=1)
    offsets = st.integers(0, int(span / timedelta(microseconds=1)))
    edges = st.one_of(
        st.sampled_from(instants), offsets.map(lambda us: origin + timedelta(microseconds=us))
    )

    @settings(max_examples=40, deadline=None, suppress_health_check=list(HealthCheck))
    @given(start=edges, end=edges, limit=st.integers(1, 7))
    def reconciles(start: datetime, end: datetime, limit: int) -> None:
        start, end = min(start, end), max(start, end)
        params = {"from": start.isoformat(), "to": end.isoformat(), "limit": limit}
        head, data = _all_pages(http, headers, wallet_id, **params)
        opening, closing = Decimal(head["opening_balance"]), Decimal(head["closing_balance"])
        debits, credits = Decimal(head["total_debits"]), Decimal(head["total_credits"])
        assert opening + credits - debits == closing
        assert credits - debits == sum((_signed(e) for e in data), Decimal(0))
        expected = [e["id"] for e, at in zip(entries, instants, strict=True) if start <= at < end]
        assert [e["id"] for e in data] == expected
        if data:
            assert Decimal(data[-1]["balance_after"]) == closing

    reconciles()
