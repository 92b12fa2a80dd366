"""Build the benchmark's data set through the public API only, and wait for finality.

Sign up (the admin token and the organization's SYSTEM wallet), create PRIMARY wallets,
fund each with a deposit from SYSTEM in batches of 1,000, and wait until nothing is
PENDING. The load then moves money only between these wallets.
"""

from __future__ import annotations

import asyncio
import secrets
import time
from dataclasses import dataclass
from typing import Any

import aiohttp
import orjson

API = "/api/v1"
CURRENCY = "INR"
FUNDING = "1000000.00"  # per wallet: far more than any scenario moves out of it


class ApiError(RuntimeError):
    """The API answered something the benchmark cannot go on from."""


@dataclass(frozen=True)
class DataSet:
    token: str
    organization_id: str
    system_wallet_id: str
    wallet_ids: list[str]
    currency: str = CURRENCY


async def _call(
    session: aiohttp.ClientSession,
    method: str,
    path: str,
    body: Any = None,
    expect: tuple[int, ...] = (200, 201, 202),
    **kwargs: Any,
) -> Any:
    data = None if body is None else orjson.dumps(body)
    async with session.request(method, path, data=data, **kwargs) as resp:
        raw = await resp.read()
        if resp.status not in expect:
            raise ApiError(f"{method} {path} -> {resp.status}: {raw[:500]!r}")
        return orjson.loads(raw) if raw else None


def _session(base_url: str, token: str | None = None, limit: int = 32) -> aiohttp.ClientSession:
    headers = {"Content-Type": "application/json"}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    return aiohttp.ClientSession(
        base_url,
        headers=headers,
        connector=aiohttp.TCPConnector(limit=limit),
        timeout=aiohttp.ClientTimeout(total=120),
    )


async def signup(base_url: str) -> tuple[str, str]:
    """A new organization and its admin; returns (token, organization id)."""
    body = {
        "email": f"bench-{secrets.token_hex(6)}@example.com",
        "password": secrets.token_urlsafe(16),
        "full_name": "Benchmark Admin",
        "organization_name": "Benchmark",
        "default_currency": CURRENCY,
    }
    async with _session(base_url) as session:
        answer = await _call(session, "POST", f"{API}/auth/signup", body, expect=(201,))
    return str(answer["access_token"]), str(answer["organization"]["id"])


async def create_wallets(base_url: str, token: str, count: int, concurrency: int = 32) -> list[str]:
    """Create `count` PRIMARY wallets owned by the admin."""
    ids: list[str] = []
    queue = iter(range(count))
    async with _session(base_url, token, concurrency) as session:

        async def worker() -> None:
            for n in queue:
                body = {"type": "PRIMARY", "currency": CURRENCY, "name": f"bench {n}"}
                wallet = await _call(session, "POST", f"{API}/wallets", body, expect=(201,))
                ids.append(str(wallet["id"]))

        await asyncio.gather(*(worker() for _ in range(concurrency)))
    return ids


async def system_wallet(base_url: str, token: str) -> str:
    async with _session(base_url, token) as session:
        page = await _call(session, "GET", f"{API}/wallets", params={"type": "SYSTEM"})
    for wallet in page["data"]:
        if wallet["currency"] == CURRENCY:
            return str(wallet["id"])
    raise ApiError("the organization has no SYSTEM wallet in INR")


async def fund(base_url: str, token: str, source: str, wallet_ids: list[str], tag: str) -> None:
    """One deposit per wallet from SYSTEM, 1,000 transfers per batch request."""
    async with _session(base_url, token, 4) as session:
        for start in range(0, len(wallet_ids), 1000):
            transfers = [
                {
                    "idempotency_key": f"{tag}-fund-{start + i}",
                    "source_wallet_id": source,
                    "destination_wallet_id": wallet_id,
                    "amount": FUNDING,
                    "currency": CURRENCY,
                    "description": f"{tag}-fund",
                }
                for i, wallet_id in enumerate(wallet_ids[start : start + 1000])
            ]
            await _call(session, "POST", f"{API}/transactions/batch", {"transfers": transfers})


POLL_PAUSE_FACTOR = 9
"""How many times as long as a finality poll took the pause after it lasts (a tenth of a
core at most)."""


async def wait_until_final(
    base_url: str, token: str, timeout_s: float, every_s: float = 0.05
) -> float:
    """Poll until no transfer of the organization is PENDING; returns that monotonic time.

    Listing PENDING transfers newest first sorts the organization's whole backlog (about
    60 ms at 60,000 waiting), so the pause after each poll grows with what the poll took:
    the harness then spends at most a tenth of one PostgreSQL core watching a long drain,
    and still polls every `every_s` once the backlog is short."""
    deadline = time.monotonic() + timeout_s
    async with _session(base_url, token, 2) as session:
        while True:
            asked = time.monotonic()
            page = await _call(
                session, "GET", f"{API}/transactions", params={"status": "PENDING", "limit": "1"}
            )
            now = time.monotonic()
            if not page["data"]:
                return now
            if now > deadline:
                raise ApiError(f"transfers still PENDING after {timeout_s}s")
            await asyncio.sleep(max(every_s, POLL_PAUSE_FACTOR * (now - asked)))


async def build(base_url: str, wallets: int, tag: str, timeout_s: float = 600) -> DataSet:
    """Sign up, create and fund `wallets` wallets, and wait until every deposit is final."""
    token, organization_id = await signup(base_url)
    source = await system_wallet(base_url, token)
    ids = await create_wallets(base_url, token, wallets)
    await fund(base_url, token, source, ids, tag)
    await wait_until_final(base_url, token, timeout_s)
    return DataSet(token, organization_id, source, ids)
