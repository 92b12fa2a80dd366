"""RabbitMQ for tests: the server at `VAULTCRAFT_TEST_AMQP_URL`, in a vhost of the run's own.

Tests that need RabbitMQ skip only when no server answers at that URL (default
amqp://guest:guest@127.0.0.1:5672/). On a local server that `rabbitmqctl` can manage,
each test session gets its own vhost, so parallel runs on one machine never share
Dramatiq's `posting` queue; elsewhere the URL's vhost is used as given.
"""

from __future__ import annotations

import os
import secrets
import shutil
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from urllib.parse import quote, unquote, urlsplit, urlunsplit

import pika.exceptions

from messaging.rabbit import check_reachable

DEFAULT_TEST_AMQP_URL = "amqp://guest:guest@127.0.0.1:5672/"
LOCAL_HOSTS = {"127.0.0.1", "localhost", "::1"}
CTL_TIMEOUT_S = 30


def amqp_test_url() -> str:
    return os.environ.get("VAULTCRAFT_TEST_AMQP_URL") or DEFAULT_TEST_AMQP_URL


def unreachable_reason(url: str) -> str | None:
    """None when RabbitMQ answers at `url`, else why the RabbitMQ tests are skipped."""
    try:
        check_reachable(url)
    except (pika.exceptions.AMQPError, OSError) as exc:
        parts = urlsplit(url)
        shown = parts._replace(netloc=parts.netloc.rpartition("@")[2]).geturl()
        return f"no RabbitMQ reachable at VAULTCRAFT_TEST_AMQP_URL ({shown}): {exc!r}"
    return None


def vhost_of(url: str) -> str:
    path = urlsplit(url).path
    return unquote(path[1:]) if len(path) > 1 else "/"


def with_vhost(url: str, vhost: str) -> str:
    return urlunsplit(urlsplit(url)._replace(path="/" + quote(vhost, safe="")))


def _ctl(*args: str) -> None:
    ctl = shutil.which("rabbitmqctl")
    if ctl is None:
        raise FileNotFoundError("rabbitmqctl")
    subprocess.run([ctl, "--quiet", *args], check=True, capture_output=True, timeout=CTL_TIMEOUT_S)


def can_manage(url: str) -> bool:
    return urlsplit(url).hostname in LOCAL_HOSTS and shutil.which("rabbitmqctl") is not None


@contextmanager
def private_vhost(url: str) -> Iterator[str]:
    """Yield `url` on a fresh vhost (deleted afterwards) when the server is ours to manage."""
    if not can_manage(url):
        yield url
        return
    name = f"vaultcraft-test-{secrets.token_hex(4)}"
    user = urlsplit(url).username or "guest"
    try:
        _ctl("add_vhost", name)
        _ctl("set_permissions", "-p", name, user, ".*", ".*", ".*")
    except (subprocess.SubprocessError, OSError):
        yield url
        return
    try:
        yield with_vhost(url, name)
    finally:
        _ctl("delete_vhost", name)


def close_connections(url: str) -> None:
    """Make RabbitMQ close every client connection to the vhost of `url`, as a restart would."""
    _ctl("close_all_connections", "--vhost", vhost_of(url), "test: broker connections closed")
