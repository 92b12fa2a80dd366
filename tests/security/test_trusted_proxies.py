"""`X-Forwarded-For` names the client only when a trusted proxy sent it.

Behind a reverse proxy every peer is the proxy, so the signup throttle would count every
client together; believing the header from anyone would let a client pick a fresh throttle
bucket per request. With `VAULTCRAFT_TRUSTED_PROXIES` the header is read from trusted
peers only, right to left, up to the first hop that is not a trusted proxy.
"""

from __future__ import annotations

import dataclasses
import ipaddress
import random
from collections.abc import Awaitable, Callable, Iterator

import pytest
import redis
from aiohttp.test_utils import TestClient

from gateway.app import create_app
from gateway.client_address import forwarded_client
from gateway.throttle import signup_key
from runtime.settings import Settings
from tests.support.api import API, PASSWORD, unique_email

AiohttpClient = Callable[..., Awaitable[TestClient]]
PROXIES = (ipaddress.ip_network("127.0.0.1/32"), ipaddress.ip_network("10.0.0.0/8"))


@pytest.mark.parametrize(
    ("peer", "forwarded", "client"),
    [
        ("198.51.100.1", ["203.0.113.9"], "198.51.100.1"),  # an untrusted peer's header is noise
        ("127.0.0.1", [], "127.0.0.1"),  # a trusted peer without a header is the client
        ("127.0.0.1", ["203.0.113.9"], "203.0.113.9"),
        ("127.0.0.1", ["6.6.6.6, 203.0.113.9, 10.1.2.3"], "203.0.113.9"),  # spoofed left part
        ("127.0.0.1", ["6.6.6.6", "203.0.113.9"], "203.0.113.9"),  # repeated headers
        ("127.0.0.1", ["10.0.0.5, 10.0.0.6"], "10.0.0.5"),  # only proxies: the farthest
        ("127.0.0.1", ["not-an-address"], "127.0.0.1"),
        ("::ffff:127.0.0.1", ["2001:db8::7"], "2001:db8::7"),
    ],
)
def test_the_client_is_the_nearest_hop_that_is_not_a_trusted_proxy(
    peer: str, forwarded: list[str], client: str
) -> None:
    assert forwarded_client(peer, forwarded, PROXIES) == client


def test_settings_read_the_trusted_proxies_and_refuse_garbage() -> None:
    env = {"VAULTCRAFT_JWT_SECRET": "x"}
    assert Settings.from_env(env).trusted_proxies == ()
    listed = Settings.from_env({**env, "VAULTCRAFT_TRUSTED_PROXIES": " 10.0.0.0/8, ::1 "})
    assert [str(n) for n in listed.trusted_proxies] == ["10.0.0.0/8", "::1/128"]
    with pytest.raises(SystemExit, match="VAULTCRAFT_TRUSTED_PROXIES"):
        Settings.from_env({**env, "VAULTCRAFT_TRUSTED_PROXIES": "10.0.0.0/8, proxy.local"})


def _address() -> str:
    return f"198.51.100.{random.randint(1, 254)}"


def _two_addresses() -> tuple[str, str]:
    first, second = random.sample(range(1, 255), 2)
    return f"198.51.100.{first}", f"198.51.100.{second}"


@pytest.fixture
def addresses(redis_url: str) -> Iterator[list[str]]:
    """Client addresses this test signs up from; their throttle counters are cleared."""
    used = ["127.0.0.1"]
    keys = lambda: [signup_key(a) for a in used]  # noqa: E731
    with redis.Redis.from_url(redis_url) as conn:
        conn.delete(*keys())
        yield used
        conn.delete(*keys())


async def _signup(client: TestClient, forwarded_for: str) -> int:
    body = {
        "email": unique_email("proxied"),
        "password": PASSWORD,
        "full_name": "Proxied",
        "organization_name": "Proxied",
    }
    resp = await client.post(
        f"{API}/auth/signup", json=body, headers={"X-Forwarded-For": forwarded_for}
    )
    return resp.status


@pytest.mark.asyncio
async def test_behind_a_trusted_proxy_each_client_has_its_own_signup_budget(
    aiohttp_client: AiohttpClient, api_settings: Settings, addresses: list[str]
) -> None:
    first, second = _two_addresses()
    addresses += [first, second]
    settings = dataclasses.replace(api_settings, signup_limit=2, trusted_proxies=PROXIES)
    client = await aiohttp_client(create_app(settings))

    own = [await _signup(client, f"6.6.6.{n}, {first}") for n in range(3)]  # spoof in vain
    other = await _signup(client, second)

    assert own == [201, 201, 429]
    assert other == 201


@pytest.mark.asyncio
async def test_without_trusted_proxies_the_header_cannot_escape_the_throttle(
    aiohttp_client: AiohttpClient, api_settings: Settings, addresses: list[str]
) -> None:
    client = await aiohttp_client(create_app(dataclasses.replace(api_settings, signup_limit=2)))

    statuses = [await _signup(client, _address()) for _ in range(3)]

    assert statuses == [201, 201, 429]  # all counted against the peer, 127.0.0.1
