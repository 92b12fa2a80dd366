"""Transfers: submit (with idempotency keys), batches, multi-leg transactions, holds (place,
capture, void), reads, the long poll, cancel, reverse."""

from __future__ import annotations

import math
import time
import uuid
from collections.abc import Iterator, Mapping, Sequence
from typing import Any, cast

from vaultcraft.client.base import ClientBase
from vaultcraft.client.errors import ApiError, TransferNotFinal
from vaultcraft.client.money import Amount, amount_text
from vaultcraft.client.types import (
    FINAL_STATUSES,
    Entry,
    HoldActionView,
    Page,
    Posting,
    Transaction,
    TransferRequest,
)

MAX_WAIT_S = 30  # the longest `?wait=` the server holds a request
WAIT_SLACK_S = 10.0  # read timeout beyond the server's hold


def new_idempotency_key() -> str:
    return str(uuid.uuid4())


def _held_for(wait_s: int) -> dict[str, Any]:
    """The request options of an answer the server holds up to `wait_s` (`?wait=`), read
    with a timeout beyond that hold; none when 0."""
    return {"params": {"wait": wait_s}, "timeout": wait_s + WAIT_SLACK_S} if wait_s else {}


class TransfersMixin(ClientBase):
    def transfer(
        self,
        source_wallet_id: str,
        destination_wallet_id: str,
        amount: Amount,
        currency: str,
        *,
        description: str | None = None,
        metadata: Mapping[str, str] | None = None,
        idempotency_key: str | None = None,
        wait_s: int = 0,
    ) -> Transaction:
        """Submit a transfer; answers once it is durably `PENDING` (or as it is now, on a
        replay of the same key). Pass your own key to make retries across restarts safe.

        With `wait_s` (≤ 30) the server holds the answer until a worker has decided the
        transfer (`COMPLETED`, `FAILED`, or `HELD`) or the time is up, when it is still
        `PENDING`: the outcome in one request, without `wait_final`.
        """
        body: dict[str, Any] = {
            "source_wallet_id": source_wallet_id,
            "destination_wallet_id": destination_wallet_id,
            "amount": amount_text(amount),
            "currency": currency,
        }
        if description is not None:
            body["description"] = description
        if metadata is not None:
            body["metadata"] = dict(metadata)
        return self._submit(body, idempotency_key or new_idempotency_key(), wait_s)

    def _submit(self, body: dict[str, Any], key: str, wait_s: int) -> Transaction:
        """`POST /transactions/transfer`, held until decided when `wait_s` is given."""
        options = {"json": body, "idempotency_key": key, **_held_for(wait_s)}
        return cast(Transaction, self._call("POST", "/transactions/transfer", **options))

    def transfer_batch(
        self, transfers: Sequence[TransferRequest], *, atomic: bool = False, wait_s: int = 0
    ) -> list[Transaction]:
        """Up to 1,000 transfers stored together, in order; each gets a key if it has none.

        The keys are fixed before the first attempt, so a retried batch is a replay. With
        `wait_s` (≤ 30) the answer waits until every transfer of the batch is decided or
        the time is up.
        """
        items = []
        for transfer in transfers:
            item: dict[str, Any] = {"idempotency_key": new_idempotency_key(), **transfer}
            item["amount"] = amount_text(item["amount"])
            items.append(item)
        body = {"transfers": items, "atomic": atomic}
        options = {"json": body, "replayable": True, **_held_for(wait_s)}
        answer = self._call("POST", "/transactions/batch", **options)
        return cast(list[Transaction], answer["data"])

    def transaction(self, transaction_id: str, *, wait_s: int = 0) -> Transaction:
        """Read a transfer; with `wait_s` (≤ 30) the server holds the answer until it is
        final or the time is up."""
        path = f"/transactions/{transaction_id}"
        return cast(Transaction, self._call("GET", path, **_held_for(wait_s)))

    def wait_final(self, transaction_id: str, timeout_s: float = 30.0) -> Transaction:
        """The transfer once it is `COMPLETED`, `FAILED` or `CANCELLED`.

        Long-polls the server (`?wait=`) in holds of at most 30 s; raises
        `TransferNotFinal` (carrying the last read) if it is still pending at `timeout_s`.
        """
        deadline = time.monotonic() + timeout_s
        while True:
            remaining = deadline - time.monotonic()
            wait = max(0, min(MAX_WAIT_S, math.ceil(remaining)))
            current = self.transaction(transaction_id, wait_s=wait)
            if current["status"] in FINAL_STATUSES:
                return current
            if time.monotonic() >= deadline:
                raise TransferNotFinal(cast(dict[str, Any], current))

    def list_transactions(
        self, *, limit: int | None = None, cursor: str | None = None, **filters: str
    ) -> Page[Transaction]:
        """Newest first. Filters: `status`, `wallet_id`, `kind`, `from`, `to`."""
        return cast(Page[Transaction], self._page("/transactions", limit, cursor, filters))

    def iter_transactions(self, **filters: str) -> Iterator[Transaction]:
        return self._iter("/transactions", filters)

    def ledger(self, transaction_id: str) -> list[Entry]:
        """The transfer's entries in the caller's books; debits equal credits."""
        answer = self._call("GET", f"/transactions/{transaction_id}/ledger")
        return cast(list[Entry], answer["data"])

    def cancel(self, transaction_id: str) -> Transaction:
        """Cancel a `PENDING` transfer; `ApiError` `not_cancellable` once it was posted."""
        return cast(Transaction, self._call("POST", f"/transactions/{transaction_id}/cancel"))

    def reverse(
        self,
        transaction_id: str,
        amount: Amount | None = None,
        *,
        idempotency_key: str | None = None,
        wait_s: int = 0,
    ) -> Transaction:
        """A new transfer back from destination to source, of `amount` or all that remains;
        with `wait_s` the answer waits until it is decided, as `transfer`'s does."""
        body = {} if amount is None else {"amount": amount_text(amount)}
        key = idempotency_key or new_idempotency_key()
        path = f"/transactions/{transaction_id}/reverse"
        options = {"json": body, "idempotency_key": key, **_held_for(wait_s)}
        return cast(Transaction, self._call("POST", path, **options))

    def hold(
        self,
        source_wallet_id: str,
        destination_wallet_id: str,
        amount: Amount,
        currency: str,
        *,
        expires_in_s: int | None = None,
        idempotency_key: str | None = None,
        wait_s: int = 0,
    ) -> Transaction:
        """Ask for `amount` to be reserved on the source; a worker makes it `HELD` (or
        `FAILED`). With `wait_s`, or `transaction(id, wait_s=...)`, the answer comes as
        soon as it is either."""
        body: dict[str, Any] = {
            "source_wallet_id": source_wallet_id,
            "destination_wallet_id": destination_wallet_id,
            "amount": amount_text(amount),
            "currency": currency,
            "hold": True,
        }
        if expires_in_s is not None:
            body["hold_expires_in_s"] = expires_in_s
        return self._submit(body, idempotency_key or new_idempotency_key(), wait_s)

    def capture(
        self,
        transaction_id: str,
        amount: Amount | None = None,
        *,
        idempotency_key: str | None = None,
        timeout_s: float = 30.0,
    ) -> Transaction:
        """Post `amount` (default: all) of a `HELD` transfer and release the rest; returns
        the transfer once a worker has captured it. `ApiError` `not_held` if it is not HELD
        (any more), also when a void or the expiry ended it first."""
        body = {} if amount is None else {"amount": amount_text(amount)}
        return self._end_hold(transaction_id, "capture", body, idempotency_key, timeout_s)

    def void(
        self, transaction_id: str, *, idempotency_key: str | None = None, timeout_s: float = 30.0
    ) -> Transaction:
        """Release a `HELD` transfer without posting it; returns it once `VOIDED`."""
        return self._end_hold(transaction_id, "void", {}, idempotency_key, timeout_s)

    def hold_action(
        self, transaction_id: str, action_id: str, *, wait_s: int = 0
    ) -> HoldActionView:
        """A capture or void as stored: `PENDING` until a worker decides it; with `wait_s`
        (≤ 30) the server holds the answer until it is decided."""
        path = f"/transactions/{transaction_id}/actions/{action_id}"
        return cast(HoldActionView, self._call("GET", path, **_held_for(wait_s)))

    def _end_hold(
        self,
        transaction_id: str,
        action: str,
        body: dict[str, Any],
        key: str | None,
        timeout_s: float,
    ) -> Transaction:
        """Ask for the capture or void (an intent, `202`), then long-poll it until decided."""
        path = f"/transactions/{transaction_id}/{action}"
        key = key or new_idempotency_key()
        asked = cast(HoldActionView, self._call("POST", path, json=body, idempotency_key=key))
        deadline = time.monotonic() + timeout_s
        while asked["status"] == "PENDING":
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TransferNotFinal(cast(dict[str, Any], self.transaction(transaction_id)))
            wait = max(1, min(MAX_WAIT_S, math.ceil(remaining)))
            asked = self.hold_action(transaction_id, asked["id"], wait_s=wait)
        if asked["status"] == "FAILED":
            code = asked["failure_code"] or "not_held"
            raise ApiError(409, code, asked["failure_message"] or code, problem=dict(asked))
        return self.transaction(transaction_id)

    def transfer_legs(
        self,
        postings: Sequence[Posting],
        *,
        description: str | None = None,
        idempotency_key: str | None = None,
        wait_s: int = 0,
    ) -> Transaction:
        """One `MULTI` transaction of 1-100 legs, which post all together or not at all;
        with `wait_s` the answer waits until it is decided, as `transfer`'s does."""
        legs = [dict(leg, amount=amount_text(leg["amount"])) for leg in postings]
        body: dict[str, Any] = {"postings": legs}
        if description is not None:
            body["description"] = description
        key = idempotency_key or new_idempotency_key()
        options = {"json": body, "idempotency_key": key, **_held_for(wait_s)}
        return cast(Transaction, self._call("POST", "/transactions", **options))
