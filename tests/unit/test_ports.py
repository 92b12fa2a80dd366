"""Ports for the servers tests and the benchmark start: free, and never the kernel's own."""

from __future__ import annotations

import socket
from collections.abc import Iterator

import pytest

from runtime import ports


def test_a_block_lies_below_the_ephemeral_range_and_every_port_binds() -> None:
    first = ports.free_port_block(4)
    block = range(first, first + 4)
    low = int(ports.EPHEMERAL_RANGE.read_text().split()[0])

    assert ports.LOWEST_SERVER_PORT <= block.start and block.stop <= max(low, 30_000)
    for port in block:
        with socket.socket() as server:
            server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            server.bind(("127.0.0.1", port))


@pytest.fixture
def listening() -> Iterator[int]:
    """A port some server listens on."""
    with socket.socket() as server:
        server.bind(("127.0.0.1", ports.free_port_block(1)))
        server.listen()
        yield int(server.getsockname()[1])


def test_a_block_skips_taken_and_avoided_ports(
    listening: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Drawn first: a block holding a listening port, then one holding an avoided port."""
    avoided = listening + 1_000
    free = ports.free_port_block(3, avoid=frozenset({avoided}))
    draws = iter([listening - 1, avoided - 2, free])
    monkeypatch.setattr(ports.random, "randrange", lambda *_: next(draws))

    assert ports.free_port_block(3, avoid=frozenset({avoided})) == free
