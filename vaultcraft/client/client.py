"""`VaultCraftClient`: one typed method per route of the VaultCraft HTTP API (sync).

    from vaultcraft.client import VaultCraftClient

    with VaultCraftClient("http://127.0.0.1:8000") as vc:
        vc.login("ada@example.com", "correct horse battery")
        tx = vc.transfer(source, destination, "10.50", "INR")
        tx = vc.wait_final(tx["id"], timeout_s=30)

Writes that move money send an `Idempotency-Key` (yours, or a fresh UUID) that stays
the same across the client's own retries. Lists come as one `Page` (`list_*`, with
`next_cursor`) or as an iterator over every item (`iter_*`). Failures raise `ApiError`.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import cast

from vaultcraft.client.base import ClientBase
from vaultcraft.client.operations import OperationsMixin
from vaultcraft.client.transfers import TransfersMixin
from vaultcraft.client.types import (
    Entry,
    Me,
    Organization,
    Page,
    SignupResult,
    Token,
    User,
    Wallet,
    WalletSummary,
)


class VaultCraftClient(TransfersMixin, OperationsMixin, ClientBase):
    """A VaultCraft API client; use it as a context manager or `close()` it."""

    # Auth, users, organization

    def signup(
        self,
        email: str,
        password: str,
        full_name: str,
        organization_name: str,
        default_currency: str = "INR",
    ) -> SignupResult:
        """Create an organization and its first admin; the client keeps the token."""
        body = {"email": email, "password": password, "full_name": full_name}
        body |= {"organization_name": organization_name, "default_currency": default_currency}
        result = cast(SignupResult, self._call("POST", "/auth/signup", json=body))
        self.token = result["access_token"]
        return result

    def login(self, email: str, password: str) -> Token:
        """Log in and keep the token. A throttled login waits out `Retry-After` and retries."""
        body = {"email": email, "password": password}
        result = cast(Token, self._call("POST", "/auth/login", json=body))
        self.token = result["access_token"]
        return result

    def me(self) -> Me:
        return cast(Me, self._call("GET", "/auth/me"))

    def create_user(self, email: str, password: str, full_name: str, role: str) -> User:
        """Add a user (`ADMIN` or `MEMBER`) to the caller's organization (admin)."""
        body = {"email": email, "password": password, "full_name": full_name, "role": role}
        return cast(User, self._call("POST", "/users", json=body))

    def list_users(self, *, limit: int | None = None, cursor: str | None = None) -> Page[User]:
        return cast(Page[User], self._page("/users", limit, cursor))

    def iter_users(self) -> Iterator[User]:
        return self._iter("/users")

    def organization(self) -> Organization:
        return cast(Organization, self._call("GET", "/organizations/me"))

    # Wallets

    def create_wallet(
        self,
        type: str,
        currency: str | None = None,
        *,
        user_id: str | None = None,
        name: str | None = None,
    ) -> Wallet:
        """A `PRIMARY`, `BONUS` or `SYSTEM` wallet; currency defaults to the organization's."""
        body = {"type": type, "currency": currency, "user_id": user_id, "name": name}
        payload = {k: v for k, v in body.items() if v is not None}
        return cast(Wallet, self._call("POST", "/wallets", json=payload))

    def list_wallets(
        self, *, limit: int | None = None, cursor: str | None = None, **filters: str
    ) -> Page[Wallet]:
        """Filters: `type`, `status`, `currency`, `user_id`."""
        return cast(Page[Wallet], self._page("/wallets", limit, cursor, filters))

    def iter_wallets(self, **filters: str) -> Iterator[Wallet]:
        return self._iter("/wallets", filters)

    def wallet(self, wallet_id: str) -> Wallet:
        return cast(Wallet, self._call("GET", f"/wallets/{wallet_id}"))

    def set_wallet_status(self, wallet_id: str, status: str) -> Wallet:
        """`ACTIVE` ↔ `LOCKED`, or `CLOSED` (final, only when empty) (admin)."""
        body = {"status": status}
        return cast(Wallet, self._call("PATCH", f"/wallets/{wallet_id}", json=body))

    def wallet_summary(self) -> WalletSummary:
        return cast(WalletSummary, self._call("GET", "/wallets/summary"))

    def list_entries(
        self, wallet_id: str, *, limit: int | None = None, cursor: str | None = None, **filters: str
    ) -> Page[Entry]:
        """A wallet's statement, oldest first. Filters: `from`, `to` (RFC 3339)."""
        return cast(
            Page[Entry], self._page(f"/wallets/{wallet_id}/entries", limit, cursor, filters)
        )

    def iter_entries(self, wallet_id: str, **filters: str) -> Iterator[Entry]:
        return self._iter(f"/wallets/{wallet_id}/entries", filters)
