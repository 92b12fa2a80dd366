"""The test stack itself: a stack that cannot come up leaves nothing running behind it."""

from __future__ import annotations

import socket
from pathlib import Path

import httpx
import pytest

from tests.support.stack import Stack


def test_a_gateway_whose_port_was_taken_starts_again_on_another(
    database_url: str, redis_url: str, tmp_path: Path
) -> None:
    """Another process bound the chosen port before the gateway did (a race that
    `free_port` cannot close): the stack moves the gateway to a new port."""
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        stack = Stack(database_url, redis_url, tmp_path, processes=("gateway",))
        stack.use_port(taken.getsockname()[1])
        with stack:
            assert stack.port != taken.getsockname()[1]
            assert httpx.get(stack.base_url + "/ready", timeout=5).status_code == 200


def test_a_stack_that_fails_to_come_up_stops_what_it_started(
    database_url: str, redis_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Its relay would otherwise go on relaying the session's events beside later stacks."""

    def never_ready(self: Stack, attempts: int = 3) -> None:
        raise TimeoutError("gateway not ready")

    monkeypatch.setattr(Stack, "_wait_ready_moving_port", never_ready)
    stack = Stack(database_url, redis_url, tmp_path, processes=("relay",))
    with pytest.raises(TimeoutError), stack:
        pass
    assert stack.procs["relay"].poll() is not None
