"""The load of a chaos run: client threads doing what integrators do, chosen by the seed.

Signups, new wallets, deposits from the SYSTEM wallet, transfers between random wallets,
batches (some atomic), cancels and reversals of earlier transfers. Each thread has its
own random stream derived from the run's seed, so a replay makes the same choices (the
interleaving of threads and faults is up to the machine).
"""

from __future__ import annotations

import random
import threading
import uuid
from dataclasses import dataclass, field
from typing import Any

import httpx

from tests.chaos.client import GaveUp, RetryingClient, Tally

API = "/api/v1"
PASSWORD = "chaos-run-password-1"
CURRENCY = "USD"


@dataclass
class Org:
    token: str
    organization_id: str
    system_wallet: str
    wallets: list[str]
    transfers: list[str] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def remember(self, ids: list[str]) -> None:
        with self.lock:
            self.transfers.extend(ids)
            del self.transfers[:-500]

    def some_transfer(self, rng: random.Random) -> str | None:
        with self.lock:
            return rng.choice(self.transfers) if self.transfers else None

    def two_wallets(self, rng: random.Random) -> list[str]:
        with self.lock:
            return rng.sample(self.wallets, 2)


class Workload:
    """Shared state of the client threads: the organizations and what the clients saw."""

    def __init__(self, base_url: str, seed: int) -> None:
        self.base_url = base_url
        self.seed = seed
        self.tally = Tally()
        self.orgs: list[Org] = []
        self.orgs_lock = threading.Lock()

    def setup(self, orgs: int, wallets: int) -> None:
        client = RetryingClient(self.base_url, self.tally)
        rng = random.Random(f"{self.seed}-setup")
        try:
            for _ in range(orgs):
                self._signup(client, rng, wallets)
        finally:
            client.close()

    def run(self, thread_index: int, stop: threading.Event) -> None:
        """One client thread: act until `stop` is set."""
        rng = random.Random(f"{self.seed}-client-{thread_index}")
        client = RetryingClient(self.base_url, self.tally)
        actions = [
            (self._transfer, 50),
            (self._deposit, 10),
            (self._batch, 10),
            (self._cancel, 10),
            (self._reverse, 8),
            (self._wallet, 3),
            (self._new_org, 1),
        ]
        do, weights = zip(*actions, strict=True)
        try:
            while not stop.is_set():
                action = rng.choices(do, weights)[0]
                try:
                    action(client, rng)
                except GaveUp as exc:
                    self.tally.odd(str(exc))
        finally:
            client.close()

    def _org(self, rng: random.Random) -> Org:
        with self.orgs_lock:
            return rng.choice(self.orgs)

    def _expect(self, resp: httpx.Response, allowed: set[int], what: str) -> bool:
        if resp.status_code in allowed:
            return True
        if resp.status_code < 500:
            self.tally.odd(f"{what}: {resp.status_code} {resp.text[:300]}")
        return False

    def _submitted(self, org: Org, resp: httpx.Response, what: str) -> None:
        if not self._expect(resp, {200, 202}, what):
            return
        body = resp.json()
        ids = [str(t["id"]) for t in body["data"]] if "data" in body else [str(body["id"])]
        self.tally.accept(ids)
        org.remember(ids)

    def _transfer_body(self, src: str, dst: str, amount: str) -> dict[str, Any]:
        return {
            "source_wallet_id": src,
            "destination_wallet_id": dst,
            "amount": amount,
            "currency": CURRENCY,
        }

    def _move(self, client: RetryingClient, org: Org, src: str, dst: str, amount: str) -> None:
        resp = client.call(
            "POST",
            f"{API}/transactions/transfer",
            token=org.token,
            json=self._transfer_body(src, dst, amount),
            key=str(uuid.uuid4()),
        )
        self._submitted(org, resp, "transfer")

    def _transfer(self, client: RetryingClient, rng: random.Random) -> None:
        org = self._org(rng)
        src, dst = org.two_wallets(rng)
        self._move(client, org, src, dst, f"{rng.randint(1, 6000) / 100:.2f}")

    def _deposit(self, client: RetryingClient, rng: random.Random) -> None:
        org = self._org(rng)
        with org.lock:
            wallet = rng.choice(org.wallets)
        self._move(client, org, org.system_wallet, wallet, f"{rng.randint(100, 500)}.00")

    def _batch(self, client: RetryingClient, rng: random.Random) -> None:
        org = self._org(rng)
        transfers = []
        for _ in range(rng.randint(2, 5)):
            src, dst = org.two_wallets(rng)
            body = self._transfer_body(src, dst, f"{rng.randint(1, 3000) / 100:.2f}")
            transfers.append({**body, "idempotency_key": str(uuid.uuid4())})
        resp = client.call(
            "POST",
            f"{API}/transactions/batch",
            token=org.token,
            json={"transfers": transfers, "atomic": rng.random() < 0.5},
        )
        self._submitted(org, resp, "batch")

    def _cancel(self, client: RetryingClient, rng: random.Random) -> None:
        org = self._org(rng)
        tx = org.some_transfer(rng)
        if tx is not None:
            resp = client.call("POST", f"{API}/transactions/{tx}/cancel", token=org.token)
            self._expect(resp, {200, 409}, "cancel")

    def _reverse(self, client: RetryingClient, rng: random.Random) -> None:
        org = self._org(rng)
        tx = org.some_transfer(rng)
        if tx is None:
            return
        body = {} if rng.random() < 0.5 else {"amount": f"{rng.randint(1, 500) / 100:.2f}"}
        resp = client.call(
            "POST",
            f"{API}/transactions/{tx}/reverse",
            token=org.token,
            json=body,
            key=str(uuid.uuid4()),
        )
        if resp.status_code in {409, 422}:
            return  # not completed (yet), or nothing left to reverse
        self._submitted(org, resp, "reverse")

    def _wallet(self, client: RetryingClient, rng: random.Random) -> None:
        self._wallet_of(client, self._org(rng))

    def _new_org(self, client: RetryingClient, rng: random.Random) -> None:
        self._signup(client, rng, wallets=3)

    def _signup(self, client: RetryingClient, rng: random.Random, wallets: int) -> None:
        email = f"chaos-{uuid.UUID(int=rng.getrandbits(128)).hex[:16]}@example.com"
        resp = client.call(
            "POST",
            f"{API}/auth/signup",
            json={
                "email": email,
                "password": PASSWORD,
                "full_name": "Chaos Admin",
                "organization_name": f"Chaos {email}",
                "default_currency": CURRENCY,
            },
        )
        if resp.status_code == 409:  # the first attempt went through; its answer was lost
            resp = client.call(
                "POST", f"{API}/auth/login", json={"email": email, "password": PASSWORD}
            )
        if not self._expect(resp, {200, 201}, "signup"):
            return
        token = str(resp.json()["access_token"])
        me = client.call("GET", f"{API}/organizations/me", token=token)
        system = client.call(
            "GET", f"{API}/wallets", token=token, params={"type": "SYSTEM", "currency": CURRENCY}
        )
        if not (self._expect(me, {200}, "me") and self._expect(system, {200}, "system")):
            return
        org = Org(token, str(me.json()["id"]), str(system.json()["data"][0]["id"]), [])
        for _ in range(wallets):
            self._wallet_of(client, org)
        with self.orgs_lock:
            self.orgs.append(org)

    def _wallet_of(self, client: RetryingClient, org: Org) -> None:
        resp = client.call(
            "POST",
            f"{API}/wallets",
            token=org.token,
            json={"type": "PRIMARY", "currency": CURRENCY},
        )
        if self._expect(resp, {201}, "wallet"):
            with org.lock:
                org.wallets.append(str(resp.json()["id"]))
