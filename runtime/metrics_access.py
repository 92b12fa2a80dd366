"""Who may read the metrics: one rule for the gateway's `/metrics` and every worker group's.

With `VAULTCRAFT_METRICS_TOKEN` set, a scrape must send `Authorization: Bearer <token>`,
from anywhere, loopback included (a reverse proxy on the same host makes every client
look local); anything else is `401`. Without a token, only loopback clients are served
and every other client gets `404`, as if there were no metrics to find. Series never
carry what identifies a tenant or a user anyway (see `runtime.metrics`); this keeps
traffic volumes and error rates to operators.
"""

from __future__ import annotations

import hmac
import ipaddress
from enum import Enum


class Access(Enum):
    SERVE = 200
    UNAUTHORIZED = 401
    HIDDEN = 404


def metrics_access(token: str, authorization: str | None, client: str | None) -> Access:
    """Whether a scrape from `client` with this `Authorization` header may be answered."""
    if token:
        expected = f"Bearer {token}".encode()
        given = (authorization or "").encode("utf-8", "replace")
        return Access.SERVE if hmac.compare_digest(given, expected) else Access.UNAUTHORIZED
    return Access.SERVE if is_loopback(client) else Access.HIDDEN


def is_loopback(client: str | None) -> bool:
    try:
        address = ipaddress.ip_address((client or "").split("%", 1)[0])
    except ValueError:
        return False
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    return address.is_loopback
