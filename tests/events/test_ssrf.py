"""Which webhook URLs and addresses are refused, at registration and at delivery."""

from __future__ import annotations

import ipaddress

import pytest

from gateway.error_statuses import status_of
from ledger_core.ssrf import (
    WebhookUrlNotAllowed,
    address_problem,
    check_addresses,
    parse_webhook_url,
    resolve_target,
)

PRIVATE = [
    "127.0.0.1",
    "127.8.9.10",
    "10.0.0.1",
    "172.16.5.4",
    "192.168.1.1",
    "169.254.1.1",
    "100.64.0.1",  # shared address space (CGNAT)
    "::1",
    "fe80::1",
    "fc00::1",
    "::ffff:127.0.0.1",  # IPv4-mapped loopback
    "::ffff:10.1.2.3",
    "64:ff9b::a00:1",  # NAT64 of 10.0.0.1
    "2002:7f00:1::",  # 6to4 of 127.0.0.1
]
NEVER = [
    "169.254.169.254",
    "fd00:ec2::254",
    "::ffff:169.254.169.254",
    "0.0.0.0",  # noqa: S104 - an address refused, not bound
    "::",
    "224.0.0.1",
    "240.0.0.1",
]
PUBLIC = ["93.184.216.34", "8.8.8.8", "2606:4700:4700::1111", "::ffff:8.8.8.8"]


@pytest.mark.parametrize("address", PRIVATE)
def test_private_addresses_need_the_operators_permission(address: str) -> None:
    ip = ipaddress.ip_address(address)
    assert address_problem(ip, allow_private=False) is not None
    assert address_problem(ip, allow_private=True) is None


@pytest.mark.parametrize("address", NEVER)
def test_metadata_and_unroutable_addresses_are_never_allowed(address: str) -> None:
    ip = ipaddress.ip_address(address)
    assert address_problem(ip, allow_private=True) is not None


@pytest.mark.parametrize("address", PUBLIC)
def test_public_addresses_are_allowed(address: str) -> None:
    assert address_problem(ipaddress.ip_address(address), allow_private=False) is None


def test_every_resolved_address_must_be_allowed() -> None:
    """A host answering with one public and one private address is refused."""
    with pytest.raises(WebhookUrlNotAllowed, match=r"10\.0\.0\.7, a private address"):
        check_addresses("https://h.example/x", ["8.8.8.8", "10.0.0.7"], allow_private=False)
    target = check_addresses("https://h.example/x?a=1", ["8.8.8.8"], allow_private=False)
    assert target.pinned_url == "https://8.8.8.8:443/x?a=1"
    assert target.host_header == "h.example"


def test_pinned_urls_keep_path_and_port() -> None:
    target = check_addresses("http://svc:8080/h/ok", ["fd12::5"], allow_private=True)
    assert target.pinned_url == "http://[fd12::5]:8080/h/ok"
    assert target.host_header == "svc:8080"


@pytest.mark.parametrize(
    ("url", "allow_private", "message"),
    [
        ("http://example.com/hook", False, "https"),
        ("ftp://example.com/hook", True, "http"),
        ("https:///nohost", False, "no host"),
        ("https://user:pw@example.com/", False, "credentials"),
        ("https://example.com/#frag", False, "fragment"),
        ("https://example.com:99999/", False, "malformed"),
        ("https://[::1/", False, "malformed"),
    ],
)
def test_url_forms_that_are_refused(url: str, allow_private: bool, message: str) -> None:
    with pytest.raises(WebhookUrlNotAllowed, match=message) as refused:
        parse_webhook_url(url, allow_private=allow_private)
    assert refused.value.code == "webhook_url_not_allowed"
    assert status_of(refused.value) == 422  # the gateway maps the code to its status


def test_delivery_time_resolution_catches_names_of_loopback() -> None:
    """`localhost` is a name, not an address: only resolving it shows where it points."""
    with pytest.raises(WebhookUrlNotAllowed, match="a loopback address"):
        resolve_target("https://localhost:8443/hook", allow_private=False)
    target = resolve_target("http://localhost:8080/hook", allow_private=True)
    assert target.address.is_loopback
    with pytest.raises(WebhookUrlNotAllowed, match="does not resolve"):
        resolve_target("https://no-such-host.invalid/hook", allow_private=False)
