"""Where a webhook may point: public https endpoints, never the inside of our network.

A webhook URL is operator-facing SSRF: whatever it names, our workers connect to. So a
URL is checked twice, when it is registered and again before every delivery (DNS can
change in between), and the delivery then connects to the very address that was checked,
so a second lookup cannot swap in another one.

Refused unless the operator allows private targets (`VAULTCRAFT_ALLOW_PRIVATE_WEBHOOKS`):
loopback, private, link-local, shared (CGNAT) and every other non-global address, and
plain `http`. Refused always: cloud metadata endpoints, multicast, unspecified and
reserved addresses, credentials in the URL, and hosts that do not resolve. IPv4 addresses
tunnelled in IPv6 (mapped, NAT64, 6to4) are judged by the IPv4 address inside.
"""

from __future__ import annotations

import ipaddress
import socket
import unicodedata
from collections.abc import Iterable
from dataclasses import dataclass
from urllib.parse import SplitResult, urlsplit

from ledger_core.errors import DomainError

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

METADATA_ADDRESSES = frozenset(
    ipaddress.ip_address(a)
    for a in ("169.254.169.254", "169.254.170.2", "100.100.100.200", "fd00:ec2::254")
)
"""Cloud instance metadata services (AWS, ECS, Alibaba, AWS over IPv6)."""

_NAT64 = ipaddress.ip_network("64:ff9b::/96")


class WebhookUrlNotAllowed(DomainError):
    code = "webhook_url_not_allowed"


@dataclass(frozen=True)
class WebhookTarget:
    """A checked URL: what to connect to, and what to call the host in Host and SNI."""

    url: str
    scheme: str
    host: str
    port: int
    address: IPAddress

    @property
    def pinned_url(self) -> str:
        """The URL with the host replaced by the checked address."""
        parts = urlsplit(self.url)
        literal = f"[{self.address}]" if self.address.version == 6 else str(self.address)
        return parts._replace(netloc=f"{literal}:{self.port}").geturl()

    @property
    def host_header(self) -> str:
        default = 443 if self.scheme == "https" else 80
        host = f"[{self.host}]" if ":" in self.host else self.host
        return host if self.port == default else f"{host}:{self.port}"


def parse_webhook_url(url: str, *, allow_private: bool) -> SplitResult:
    """The URL's parts if its form is acceptable (scheme, host, no credentials)."""
    if any(char.isspace() or unicodedata.category(char) == "Cc" for char in url):
        # Checked before urlsplit, which silently drops tabs and line breaks.
        raise _refuse("the URL may not contain spaces or control characters")
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        raise _refuse(f"the URL is malformed: {exc}") from None
    schemes = {"https", "http"} if allow_private else {"https"}
    if parts.scheme not in schemes:
        raise _refuse("the URL must use https" if not allow_private else "the URL must be http(s)")
    if not parts.hostname:
        raise _refuse("the URL has no host")
    if parts.username is not None or parts.password is not None:
        raise _refuse("the URL may not carry credentials")
    if parts.fragment:
        raise _refuse("the URL may not have a #fragment")
    if port == 0:
        raise _refuse("the URL's port must be between 1 and 65535")
    return parts


def _embedded_ipv4(address: IPAddress) -> IPAddress:
    if isinstance(address, ipaddress.IPv6Address):
        if address.ipv4_mapped is not None:
            return address.ipv4_mapped
        if address.sixtofour is not None:
            return address.sixtofour
        if address in _NAT64:
            return ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
    return address


def address_problem(address: IPAddress, *, allow_private: bool) -> str | None:
    """Why a webhook may not connect to `address`, or None if it may."""
    inner = _embedded_ipv4(address)
    if address in METADATA_ADDRESSES or inner in METADATA_ADDRESSES:
        return "a cloud metadata address"
    if inner.is_loopback:  # before `is_reserved`, which includes ::1
        return None if allow_private else "a loopback address"
    if inner.is_unspecified or inner.is_multicast or inner.is_reserved:
        return "an unroutable address"
    if inner.is_link_local:
        return None if allow_private else "a link-local address"
    if not inner.is_global:
        return None if allow_private else "a private address"
    return None


def check_addresses(url: str, addresses: Iterable[str], *, allow_private: bool) -> WebhookTarget:
    """Accept `url` if every address its host resolved to is allowed; pin the first one.

    Every address must pass, not just one: a host answering with a public and a private
    address could otherwise be steered to the private one by whoever controls its DNS.
    """
    parts = parse_webhook_url(url, allow_private=allow_private)
    host = parts.hostname or ""
    resolved: list[IPAddress] = []
    for raw in addresses:
        address = ipaddress.ip_address(raw.split("%", 1)[0])  # drop an IPv6 zone id
        problem = address_problem(address, allow_private=allow_private)
        if problem is not None:
            raise _refuse(f"{host} resolves to {address}, {problem}")
        if address not in resolved:
            resolved.append(address)
    if not resolved:
        raise _refuse(f"{host} does not resolve to any address")
    port = parts.port or (443 if parts.scheme == "https" else 80)
    return WebhookTarget(url=url, scheme=parts.scheme, host=host, port=port, address=resolved[0])


def host_and_port(url: str, *, allow_private: bool) -> tuple[str, int]:
    """The host to resolve and the port to ask about, after the form checks."""
    parts = parse_webhook_url(url, allow_private=allow_private)
    return parts.hostname or "", parts.port or (443 if parts.scheme == "https" else 80)


def resolve_target(url: str, *, allow_private: bool) -> WebhookTarget:
    """Resolve the URL's host now (blocking) and check every address it names."""
    host, port = host_and_port(url, allow_private=allow_private)
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError, OSError) as exc:
        raise _refuse(f"{host} does not resolve: {exc}") from None
    return check_addresses(url, [str(info[4][0]) for info in infos], allow_private=allow_private)


def _refuse(detail: str) -> WebhookUrlNotAllowed:
    return WebhookUrlNotAllowed(detail, field="url")
