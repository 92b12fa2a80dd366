"""The address a request comes from, as throttles, audit records and access logs name it.

Behind a reverse proxy every request's peer is the proxy. `X-Forwarded-For` names the
real client, but anyone can send that header: it is believed only when the peer is one of
`VAULTCRAFT_TRUSTED_PROXIES`, and then only as far as the chain of trusted proxies goes.
The list is read from the right (the hop the trusted peer appended) and the first address
that is not a trusted proxy is the client; whatever a client wrote to the left of it is
ignored, so a spoofed header cannot choose another throttle bucket.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Sequence

from aiohttp import web

from gateway.state import SETTINGS
from runtime.settings import IPNetwork

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


def client_address(request: web.Request) -> str | None:
    """The client's address: the peer, or the nearest untrusted hop behind trusted proxies."""
    trusted = request.app[SETTINGS].trusted_proxies
    if not trusted or request.remote is None:
        return request.remote
    return forwarded_client(request.remote, request.headers.getall("X-Forwarded-For", []), trusted)


def forwarded_client(peer: str, forwarded: Sequence[str], trusted: Sequence[IPNetwork]) -> str:
    """The client behind `peer` given the `X-Forwarded-For` values, believing only `trusted`."""
    nearest = peer
    hops = [hop.strip() for value in forwarded for hop in value.split(",")]
    for hop in [peer, *reversed(hops)]:
        address = _address(hop)
        if address is None:
            return nearest  # garbage from a client: the last hop we could place answers
        nearest = str(address)
        if not any(address in network for network in trusted):
            return nearest
    return nearest


def _address(text: str) -> IPAddress | None:
    try:
        address = ipaddress.ip_address(text)
    except ValueError:
        return None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address
