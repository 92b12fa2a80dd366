"""Checking webhook deliveries on the receiving side.

VaultCraft signs each delivery with `VaultCraft-Signature: t=<unix>,v1=<hex>`, the hex
being HMAC-SHA256 keyed with the webhook's secret over `"<t>.<raw body>"`. Check the raw
bytes as received (never a re-serialized body); the tolerance refuses old replays.
`verify_signature(secret, header, body, *, tolerance_s=300, now=None)` is the sender's
own check (`ledger_core.webhooks.verify`, standard library only): constant-time compare,
any of several `v1=` values may match (secret rotation), a malformed header is not valid.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any, cast

from ledger_core.webhooks import DEFAULT_TOLERANCE_S, EVENT_ID_HEADER, SIGNATURE_HEADER
from ledger_core.webhooks import verify as verify_signature
from vaultcraft.client.errors import InvalidSignature

__all__ = ["DEFAULT_TOLERANCE_S", "parse_event", "verify_signature"]


def parse_event(
    secret: str,
    headers: Mapping[str, str],
    body: bytes,
    *,
    tolerance_s: int = DEFAULT_TOLERANCE_S,
    now: int | None = None,
) -> dict[str, Any]:
    """The event a delivery carries, once its signature checks out; else `InvalidSignature`.

    Dedupe on the returned event's `id` (also in `VaultCraft-Event-Id`): delivery is
    at-least-once.
    """
    lowered = {name.lower(): value for name, value in headers.items()}
    header = lowered.get(SIGNATURE_HEADER.lower())
    if header is None:
        raise InvalidSignature(f"no {SIGNATURE_HEADER} header")
    if not verify_signature(secret, header, body, tolerance_s=tolerance_s, now=now):
        raise InvalidSignature("the signature does not match the body, or it is too old")
    event = cast(dict[str, Any], json.loads(body))
    claimed = lowered.get(EVENT_ID_HEADER.lower())
    if claimed is not None and claimed != str(event.get("id")):
        raise InvalidSignature(f"{EVENT_ID_HEADER} does not name the signed event")
    return event
