"""Send one signed `webhook.test` event to an endpoint now, from the gateway.

Used by `POST /webhooks/{id}/test` so an integrator can check their receiver and its
signature check without waiting for a real event. The event is not stored and never
retried; the request goes to the address the SSRF check approved, as deliveries do.
"""

from __future__ import annotations

import time
import uuid
from datetime import UTC, datetime
from typing import Any

import aiohttp
import orjson

from ledger_core.ssrf import WebhookTarget
from ledger_core.timestamps import rfc3339
from ledger_core.webhooks import (
    ATTEMPT_HEADER,
    DELIVERY_ID_HEADER,
    EVENT_ID_HEADER,
    EVENT_TYPE_HEADER,
    SIGNATURE_HEADER,
    Webhook,
    sign,
)

TEST_EVENT = "webhook.test"
TIMEOUT_S = 5.0
_ERROR_LIMIT = 500


async def ping(webhook: Webhook, secret: str, target: WebhookTarget) -> dict[str, Any]:
    """POST a test event once; the outcome, never an exception for what the receiver does."""
    event_id = uuid.uuid4()
    body = orjson.dumps(
        {
            "id": str(event_id),
            "type": TEST_EVENT,
            "created_at": rfc3339(datetime.now(UTC)),
            "organization_id": str(webhook.organization_id),
            "data": {"webhook_id": str(webhook.id)},
        }
    )
    headers = {
        "Host": target.host_header,
        "Content-Type": "application/json",
        SIGNATURE_HEADER: sign(secret, body),
        EVENT_ID_HEADER: str(event_id),
        EVENT_TYPE_HEADER: TEST_EVENT,
        DELIVERY_ID_HEADER: str(uuid.uuid4()),
        ATTEMPT_HEADER: "1",
    }
    started = time.perf_counter()
    status: int | None = None
    error: str | None = None
    try:
        timeout = aiohttp.ClientTimeout(total=TIMEOUT_S)
        async with (
            aiohttp.ClientSession(timeout=timeout) as session,
            session.post(
                target.pinned_url,
                data=body,
                headers=headers,
                allow_redirects=False,
                server_hostname=target.host if target.scheme == "https" else None,
            ) as response,
        ):
            status = response.status
    except TimeoutError:
        error = f"timed out after {TIMEOUT_S:g} s"
    except aiohttp.ClientError as exc:
        error = f"{type(exc).__name__}: {exc}"[:_ERROR_LIMIT]
    if status is not None and not 200 <= status < 300:
        error = f"the endpoint answered HTTP {status}"
    return {
        "event_id": str(event_id),
        "succeeded": error is None,
        "status_code": status,
        "error": error,
        "duration_ms": int((time.perf_counter() - started) * 1000),
    }
