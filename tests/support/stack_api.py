"""A small synchronous client of the public API, for tests that run the whole stack."""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass
from typing import Any

import httpx

PASSWORD = "correct horse battery staple"


@dataclass
class Tenant:
    """A signed-up organization: its admin's token and its SYSTEM wallet."""

    http: httpx.Client
    token: str
    organization_id: str
    user_id: str
    system_wallet_id: str

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}

    def get(self, path: str, **kw: Any) -> httpx.Response:
        return self.http.get(path, headers=self.headers, **kw)

    def post(
        self, path: str, json: Any = None, key: str | None = None, **kw: Any
    ) -> httpx.Response:
        headers = dict(self.headers)
        if key is not None:
            headers["Idempotency-Key"] = key
        return self.http.post(path, json=json, headers=headers, **kw)

    def wallet(self, currency: str = "USD", **body: Any) -> str:
        resp = self.post("/api/v1/wallets", {"type": "PRIMARY", "currency": currency, **body})
        assert resp.status_code == 201, resp.text
        return str(resp.json()["id"])

    def transfer(
        self,
        source: str,
        destination: str,
        amount: str,
        currency: str = "USD",
        key: str | None = None,
    ) -> httpx.Response:
        body = leg(source, destination, amount, currency)
        return self.post("/api/v1/transactions/transfer", body, key=key or str(uuid.uuid4()))

    def transfer_retrying(
        self, source: str, destination: str, amount: str, attempts: int = 3
    ) -> httpx.Response:
        """`transfer`, sent again under the same idempotency key when the connection fails
        (as a client should): `202`, or `200` when an attempt whose answer was lost stored
        it; a `200` to a first attempt, or without `Idempotent-Replayed`, fails here. Many
        threads on one `httpx.Client` now and then get a pooled connection that fails under
        them (`ReadError`), after the request may have reached the server."""
        key = str(uuid.uuid4())
        for attempt in range(1, attempts + 1):
            try:
                resp = self.transfer(source, destination, amount, key=key)
            except httpx.TransportError:
                if attempt == attempts:
                    raise
                continue
            if resp.status_code == 200:
                assert attempt > 1 and resp.headers.get("Idempotent-Replayed") == "true", resp
            return resp
        raise AssertionError("unreachable")

    def multi(
        self, legs: list[dict[str, str]], key: str | None = None, **extra: Any
    ) -> httpx.Response:
        """Submit a multi-leg transaction (`POST /transactions`)."""
        body = {"postings": legs, **extra}
        return self.post("/api/v1/transactions", body, key=key or str(uuid.uuid4()))

    def deposit(self, wallet: str, amount: str, currency: str = "USD") -> dict[str, Any]:
        """Fund a wallet from the SYSTEM wallet and wait until it is posted."""
        resp = self.transfer(self.system_wallet_id, wallet, amount, currency)
        assert resp.status_code == 202, resp.text
        final = self.wait_final(resp.json()["id"])
        assert final["status"] == "COMPLETED", final
        return final

    def wait_final(self, transaction_id: str, timeout_s: float = 30.0) -> dict[str, Any]:
        deadline = time.monotonic() + timeout_s
        while True:
            resp = self.get(f"/api/v1/transactions/{transaction_id}", params={"wait": 5})
            assert resp.status_code == 200, resp.text
            body: dict[str, Any] = resp.json()
            if body["status"] != "PENDING" or time.monotonic() > deadline:
                return body

    def balance(self, wallet: str) -> str:
        return str(self.get(f"/api/v1/wallets/{wallet}").json()["balance"])


def leg(source: str, destination: str, amount: str, currency: str = "USD") -> dict[str, str]:
    """One movement as a transfer body or a multi-leg transaction's posting."""
    return {
        "source_wallet_id": source,
        "destination_wallet_id": destination,
        "amount": amount,
        "currency": currency,
    }


def signup(http: httpx.Client, currency: str = "USD") -> Tenant:
    email = f"admin-{uuid.uuid4().hex[:12]}@example.com"
    resp = http.post(
        "/api/v1/auth/signup",
        json={
            "email": email,
            "password": PASSWORD,
            "full_name": "Ada Admin",
            "organization_name": f"Org {email}",
            "default_currency": currency,
        },
    )
    assert resp.status_code == 201, resp.text
    body = resp.json()
    token = body["access_token"]
    wallets = http.get(
        "/api/v1/wallets", params={"type": "SYSTEM"}, headers={"Authorization": f"Bearer {token}"}
    )
    system = wallets.json()["data"][0]["id"]
    return Tenant(http, token, body["organization"]["id"], body["user"]["id"], system)
