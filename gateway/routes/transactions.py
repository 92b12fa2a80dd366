"""Transfers: submit (one, or a batch), cancel and reverse. Reads are in `transaction_reads`.

Submitting only stores the intent: a `202` means it is durably PENDING and will be posted
by a worker; poll `GET /transactions/{id}` (optionally with `?wait=`) for the outcome, or
submit with `?wait=` to have the answer itself wait for it (`accepted`).
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable, Sequence
from typing import Any, TypeVar
from uuid import UUID

from aiohttp import web
from prometheus_client import Counter
from structlog.contextvars import bind_contextvars

from gateway.auth import acting, principal
from gateway.error_statuses import status_of
from gateway.long_poll import wait_all_decided
from gateway.registry import API_PREFIX, RouteTable
from gateway.responses import Problem, field_error, json_response
from gateway.route_spec import HeaderParam
from gateway.schemas.transactions import (
    BatchOut,
    CaptureHold,
    CreateBatch,
    CreateMulti,
    CreateTransfer,
    HoldActionOut,
    ReverseTransfer,
    SubmitWaitQuery,
    TransactionOut,
    VoidHold,
    WaitQuery,
)
from gateway.state import COMMITTER, ENGINE, SETTINGS, WAITER
from ledger_core.errors import DomainError
from ledger_core.holds import HoldAction, action_view
from ledger_core.intents import BatchRefused, Stored, TransferIntent
from ledger_core.money import parse_amount
from ledger_core.posting import Leg
from ledger_core.services import holds, transfers
from ledger_core.transfers import transaction_view
from runtime import metrics

routes = RouteTable(tag="Transfers", read_scope="transfers:read", write_scope="transfers:write")
T = TypeVar("T")

_KEY_RE = re.compile(r"[\x21-\x7e]{1,255}")
_SUBMIT_ERRORS = (400, 403, 404)
_KEY_DOC = (
    "Header `Idempotency-Key` (1-255 printable ASCII) is required: the same key with the same"
    " body answers `200` with `Idempotent-Replayed: true`; with another body"
    " `422 idempotency_key_reused`."
)


IDEMPOTENCY_KEY = HeaderParam(
    name="Idempotency-Key",
    description=(
        "Your unique key for this request, 1-255 printable ASCII characters without spaces."
        " Retrying with the same key and body answers `200` with the stored transfer and"
        " `Idempotent-Replayed: true`; the same key with another body is refused"
        " (`422 idempotency_key_reused`)."
    ),
    example="order-4711-payout",
    pattern=r"^[\x21-\x7e]+$",
    max_length=255,
)


BATCH_IDEMPOTENCY_KEY = HeaderParam(
    name="Idempotency-Key",
    description=(
        "Optional: your key for the whole batch, 1-255 printable ASCII characters without"
        " spaces (each transfer still carries its own `idempotency_key`). Retrying the same"
        " batch with the same key answers `200` with the transfers it stored, as they are now,"
        " and `Idempotent-Replayed: true`, checking nothing again; another batch under the"
        " key is refused (`422 idempotency_key_reused`). Without it, a retried batch is"
        " answered from the items' own keys."
    ),
    example="payroll-2026-12",
    required=False,
    pattern=r"^[\x21-\x7e]+$",
    max_length=255,
)


_ACCEPTS_TRANSFER: dict[str, Any] = {
    "response": TransactionOut,
    "status": 202,
    "headers": (IDEMPOTENCY_KEY,),
    "created_path": "/transactions/{transaction_id}",
    "query": SubmitWaitQuery,
}
"""What every route that stores a transfer under an `Idempotency-Key` declares: `202` with
`Location`, or `200` with `Idempotent-Replayed` (see `accepted`), and `?wait=N`."""


def idempotency_key(request: web.Request) -> str:
    key = request.headers.get("Idempotency-Key")
    if key is None:
        raise Problem(
            400,
            "idempotency_key_required",
            "send an Idempotency-Key header (1-255 printable ASCII characters)",
            errors=[field_error("Idempotency-Key", "required")],
        )
    if not _KEY_RE.fullmatch(key):
        raise Problem(
            400,
            "invalid_idempotency_key",
            "Idempotency-Key must be 1-255 printable ASCII characters without spaces",
            errors=[field_error("Idempotency-Key", "1-255 printable ASCII characters")],
        )
    return key


def _intent(body: CreateTransfer | Any, key: str, hold_s: int | None = None) -> TransferIntent:
    return TransferIntent(
        idempotency_key=key,
        source_wallet_id=body.source_wallet_id,
        destination_wallet_id=body.destination_wallet_id,
        amount=parse_amount(body.amount, body.currency),
        currency=body.currency,
        description=body.description,
        metadata=dict(body.metadata),
        reference=body.reference,
        hold_expires_in_s=hold_s,
    )


def _hold_seconds(request: web.Request, body: CreateTransfer) -> int | None:
    """How long a hold lasts (the server's default unless asked); None for a transfer."""
    if not body.hold:
        if body.hold_expires_in_s is not None:
            raise DomainError("hold_expires_in_s needs hold: true", field="hold_expires_in_s")
        return None
    return body.hold_expires_in_s or request.app[SETTINGS].hold_default_expires_s


def count_accepted(stored: Sequence[Stored]) -> None:
    """Count the transfers this request stored (replays are not counted again)."""
    for result in stored:
        if not result.replayed:
            _accepted_counter(result.row["kind"]).inc()


@functools.cache
def _accepted_counter(kind: str) -> Counter:
    """The accepted-transfers series of one kind (a handful), found once."""
    return metrics.transfers_accepted_total.labels(kind)


async def accepted(request: web.Request, stored: Stored, wait_s: int = 0) -> web.Response:
    """`202` with `Location` for a new transfer; `200` and `Idempotent-Replayed` for a replay.

    With `wait_s`, the answer waits until the transfer is decided or that time passes, and
    shows it as it is then: one request where a client would otherwise submit and then
    long-poll. It was stored either way, so the status does not change with the wait.
    """
    [row] = await wait_all_decided(request, [stored.row], wait_s)
    body = transaction_view(row, principal(request).organization_id)
    transaction_id = body["id"]
    bind_contextvars(transaction_id=transaction_id)  # the request's access line names it
    if stored.replayed:
        return json_response(body, status=200, headers={"Idempotent-Replayed": "true"})
    return json_response(
        body, status=202, headers={"Location": f"{API_PREFIX}/transactions/{transaction_id}"}
    )


@routes.post(
    "/transactions/transfer",
    body=CreateTransfer,
    **_ACCEPTS_TRANSFER,
    errors=_SUBMIT_ERRORS,
    description=(
        "Checked at once: the body, that both wallets exist and are visible (`404`), that the"
        " caller may debit the source (`403`), one currency on both wallets and the request"
        " (`422 currency_mismatch`), and source ≠ destination (`422 same_wallet`). Funds, wallet"
        " status and limits are checked when a worker posts it (`FAILED` with a `failure_code`)."
        " With `hold: true` the worker reserves the amount on the source instead (`HELD`, no"
        " entries) until it is captured, voided or expires after `hold_expires_in_s`. " + _KEY_DOC
    ),
)
async def submit_transfer(
    request: web.Request, body: CreateTransfer, query: SubmitWaitQuery
) -> web.Response:
    """Submit a transfer (answers 202 once it is durably PENDING)"""
    intent = _intent(body, idempotency_key(request), _hold_seconds(request, body))
    stored = await transfers.submit_transfer(request.app[COMMITTER], acting(request), intent)
    count_accepted([stored])
    return await accepted(request, stored, query.wait)


@routes.post(
    "/wallets/transfer",
    body=CreateTransfer,
    **_ACCEPTS_TRANSFER,
    errors=_SUBMIT_ERRORS,
    deprecated=True,
    description=(
        "An alias of `POST /transactions/transfer`, kept because the contract lists it; new"
        " clients should use that operation. " + _KEY_DOC
    ),
)
async def submit_wallet_transfer(
    request: web.Request, body: CreateTransfer, query: SubmitWaitQuery
) -> web.StreamResponse:
    """Submit a transfer between wallets (same as /transactions/transfer)"""
    return await submit_transfer(request, body, query)


def _each(items: Sequence[Any], prefix: str, make: Callable[[Any], T]) -> list[T]:
    """`make` of every item; the amounts refused are listed by position, storing nothing."""
    made, errors = [], []
    for n, item in enumerate(items):
        try:
            made.append(make(item))
        except DomainError as exc:
            errors.append(field_error(f"{prefix}[{n}].{exc.field or 'amount'}", exc.detail))
    if errors:
        raise Problem(
            422, "invalid_amount", "some amounts are not valid; nothing was stored", errors=errors
        )
    return made


def _batch_intents(body: CreateBatch) -> list[TransferIntent]:
    return _each(body.transfers, "transfers", lambda item: _intent(item, item.idempotency_key))


def _multi_intent(body: CreateMulti, key: str) -> TransferIntent:
    legs = _each(
        body.postings,
        "postings",
        lambda p: Leg(
            p.source_wallet_id,
            p.destination_wallet_id,
            parse_amount(p.amount, p.currency),
            p.currency,
        ),
    )
    first = legs[0]
    return TransferIntent(
        key,
        first.source_wallet_id,
        first.destination_wallet_id,
        first.amount,
        first.currency,
        body.description,
        dict(body.metadata),
        postings=tuple(legs),
    )


def _refused_batch(exc: BatchRefused, prefix: str = "transfers") -> Problem:
    errors = [
        field_error(f"{prefix}[{n}].{e.field or ''}".rstrip("."), f"{e.code}: {e.detail}")
        for n, e in exc.failures
    ]
    codes = {e.code for _, e in exc.failures}
    code = codes.pop() if len(codes) == 1 else exc.code
    return Problem(status_of(exc), code, exc.detail, errors=errors)


@routes.post(
    "/transactions/batch",
    body=CreateBatch,
    response=BatchOut,
    status=202,
    headers=(BATCH_IDEMPOTENCY_KEY,),
    query=SubmitWaitQuery,
    errors=_SUBMIT_ERRORS,
    description=(
        "Up to 1,000 transfers, each with its own `idempotency_key`, stored together in request"
        " order: if any one is refused, none is stored. With `atomic: true` they also post all"
        " together or all fail together (`failure_code: atomic_batch_failed` on the others)."
        " An optional `Idempotency-Key` header names the whole batch: the same batch again"
        " answers `200` with `Idempotent-Replayed: true`, another batch under the key"
        " `422 idempotency_key_reused`. A batch whose every transfer was already stored under"
        " its item key also answers `200` with `Idempotent-Replayed: true`. With `?wait=N` the"
        " answer waits until every transfer of the batch is decided, or N seconds pass."
    ),
)
async def submit_batch(
    request: web.Request, body: CreateBatch, query: SubmitWaitQuery
) -> web.Response:
    """Submit a batch of transfers"""
    who = acting(request)
    key = idempotency_key(request) if "Idempotency-Key" in request.headers else None
    try:
        stored = await transfers.submit_batch(
            request.app[ENGINE],
            request.app[COMMITTER],
            who,
            _batch_intents(body),
            atomic=body.atomic,
            batch_key=key,
        )
    except BatchRefused as exc:
        raise _refused_batch(exc) from None
    count_accepted(stored)
    rows = await wait_all_decided(request, [s.row for s in stored], query.wait)
    data = [transaction_view(row, who.principal.organization_id) for row in rows]
    if all(s.replayed for s in stored):
        return json_response({"data": data}, status=200, headers={"Idempotent-Replayed": "true"})
    return json_response({"data": data}, status=202)


@routes.post(
    "/transactions",
    body=CreateMulti,
    **_ACCEPTS_TRANSFER,
    errors=_SUBMIT_ERRORS,
    description=(
        "One transaction (`kind: MULTI`) of 1-100 legs, each checked like a transfer (a refused"
        " leg refuses the request, listed as `postings[n]`); legs may use several currencies,"
        " each balanced on its own. A worker posts every leg in order or none: one leg short of"
        " funds fails the whole transaction (`insufficient_funds`, `failure_message` names the"
        " leg). A leg into another organization follows the rules of a cross-organization"
        " transfer: that organization must accept yours as a counterparty (otherwise its wallet"
        " is `404 not_found`, naming the leg), and the leg posts through the clearing wallets of"
        " the pair and is settled with them. Legs may pay several organizations; each payee"
        " reads the transaction and gets its events, seeing only its own legs. " + _KEY_DOC
    ),
)
async def submit_multi(
    request: web.Request, body: CreateMulti, query: SubmitWaitQuery
) -> web.Response:
    """Submit a multi-leg transaction"""
    intent = _multi_intent(body, idempotency_key(request))
    try:
        stored = await transfers.submit_multi(
            request.app[ENGINE], request.app[COMMITTER], acting(request), intent
        )
    except BatchRefused as exc:
        raise _refused_batch(exc, "postings") from None
    count_accepted([stored])
    return await accepted(request, stored, query.wait)


@routes.post(
    "/transactions/{transaction_id}/cancel",
    response=TransactionOut,
    errors=(403, 404, 409),
    description=(
        "Only a PENDING transfer can be cancelled; once a worker has posted or failed it the answer"
        " is `409 not_cancellable`. A cancel racing the posting ends in exactly one of the two."
        " Cancelling a member of an atomic batch cancels the whole batch."
    ),
)
async def cancel(request: web.Request, transaction_id: UUID) -> web.Response:
    """Cancel a pending transfer"""
    who = acting(request)
    row = await transfers.cancel_transfer(request.app[ENGINE], who, transaction_id)
    return json_response(transaction_view(row, who.principal.organization_id))


@routes.post(
    "/transactions/{transaction_id}/reverse",
    body=ReverseTransfer,
    optional_body=True,
    **_ACCEPTS_TRANSFER,
    errors=(400, 403, 404, 409),
    description=(
        "A new transfer from the original's destination back to its source, linked by"
        " `reverses_transaction_id`. `amount` defaults to what remains (the body may be"
        " empty or absent); all reversals together"
        " never exceed the original (`422 reversal_exceeds_original`). Only COMPLETED transfers"
        " inside the organization can be reversed (`409 not_reversible`). " + _KEY_DOC
    ),
)
async def reverse(
    request: web.Request, transaction_id: UUID, body: ReverseTransfer, query: SubmitWaitQuery
) -> web.Response:
    """Reverse a completed transfer (admin)"""
    who = acting(request)
    key = idempotency_key(request)
    stored = await transfers.reverse_transfer(
        request.app[ENGINE], request.app[COMMITTER], who, transaction_id, body.amount, key
    )
    count_accepted([stored])
    return await accepted(request, stored, query.wait)


_HOLD_DOC = (
    " Checked at once: the hold is visible to the payer (`404`, `403`) and `HELD` (else"
    " `409 not_held`). The request is then stored as an intent (`PENDING`) and answers `202`"
    " with `Location` to poll (`GET /transactions/{id}/actions/{action_id}`); a posting worker"
    " decides it under the hold's and its wallets' locks. A hold ends exactly once: a capture"
    " racing a void, another capture or the expiry ends in one of them, the others end"
    " `FAILED` with `failure_code: not_held`. Header `Idempotency-Key` is required: the same"
    " request with the same key answers `200` with the stored action and"
    " `Idempotent-Replayed: true`; another request with it `422 idempotency_key_reused`."
)


_ACCEPTS_HOLD_ACTION: dict[str, Any] = {
    "response": HoldActionOut,
    "status": 202,
    "headers": (IDEMPOTENCY_KEY,),
    "created_path": "/transactions/{transaction_id}/actions/{action_id}",
}
"""What capture and void declare: `202` with the action's `Location`, or `200` with
`Idempotent-Replayed` (see `_action_answer`)."""


def _action_answer(request: web.Request, stored: holds.StoredAction) -> web.Response:
    row = stored.row
    bind_contextvars(transaction_id=str(row["transaction_id"]))
    body = action_view(row, stored.currency)
    if stored.replayed:
        return json_response(body, status=200, headers={"Idempotent-Replayed": "true"})
    location = f"{API_PREFIX}/transactions/{row['transaction_id']}/actions/{row['id']}"
    return json_response(body, status=202, headers={"Location": location})


@routes.post(
    "/transactions/{transaction_id}/capture",
    body=CaptureHold,
    **_ACCEPTS_HOLD_ACTION,
    errors=(400, 403, 404, 409),
    description=(
        "Post `amount` (default: all of the hold; at most the hold, else"
        " `422 capture_exceeds_hold`) from the hold's source to its destination and release"
        " the rest: the transfer ends `COMPLETED` with `amount` the captured amount. Risk rules"
        " are not applied again (they were when the hold was placed, like a card"
        " authorization); the wallets must still be active." + _HOLD_DOC
    ),
)
async def capture(request: web.Request, transaction_id: UUID, body: CaptureHold) -> web.Response:
    """Capture a hold (answers 202 once the capture is durably PENDING)"""
    return await _request_action(request, transaction_id, HoldAction.CAPTURE, body.amount)


@routes.post(
    "/transactions/{transaction_id}/void",
    body=VoidHold,
    **_ACCEPTS_HOLD_ACTION,
    errors=(400, 403, 404, 409),
    description="Release the whole hold without posting: the transfer ends `VOIDED`." + _HOLD_DOC,
)
async def void(request: web.Request, transaction_id: UUID, body: VoidHold) -> web.Response:
    """Void a hold (answers 202 once the void is durably PENDING)"""
    return await _request_action(request, transaction_id, HoldAction.VOID)


async def _request_action(
    request: web.Request, transaction_id: UUID, action: HoldAction, amount: str | None = None
) -> web.Response:
    key = idempotency_key(request)
    stored = await holds.request_action(
        request.app[ENGINE], acting(request), transaction_id, action, key, amount
    )
    return _action_answer(request, stored)


@routes.get(
    "/transactions/{transaction_id}/actions/{action_id}",
    query=WaitQuery,
    response=HoldActionOut,
    errors=(403, 404),
    description=(
        "A capture or void, `PENDING` until a posting worker decides it (usually within"
        " milliseconds). Visible to whoever may end the hold. `?wait=N` holds the answer until"
        " it is decided or N seconds pass; no need to poll."
    ),
)
async def get_hold_action(
    request: web.Request, transaction_id: UUID, action_id: UUID, query: WaitQuery
) -> web.Response:
    """Read a capture or void; `?wait=N` holds the answer until it is decided"""
    engine, who = request.app[ENGINE], acting(request)
    stored = await holds.get_action(engine, who, transaction_id, action_id)
    if query.wait and stored.row["status"] == "PENDING":
        stored = await request.app[WAITER].wait_until(
            transaction_id,
            float(query.wait),
            lambda _: holds.get_action(engine, who, transaction_id, action_id),
            lambda found: found.row["status"] != "PENDING",
        )
    return json_response(action_view(stored.row, stored.currency))
