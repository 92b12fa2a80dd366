"""Free local TCP ports, for processes started by tests and the benchmark."""

from __future__ import annotations

import random
import socket
from pathlib import Path

EPHEMERAL_RANGE = Path("/proc/sys/net/ipv4/ip_local_port_range")
LOWEST_SERVER_PORT = 20_000
"""Above the ports of the services a machine runs (PostgreSQL, Redis, RabbitMQ and their
management ports, the product's own defaults)."""


def free_port() -> int:
    """A TCP port nobody listens on right now (the kernel picks it, from its ephemeral
    range: fine for an address that must refuse, not for a server started later)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def server_ports() -> range:
    """Where `free_port_block` draws from: below the kernel's ephemeral range.

    The kernel gives a port of that range to every outgoing connection as its local end
    (to PostgreSQL, Redis, RabbitMQ), so a port drawn from it can be taken between the draw
    and a server's bind, or while the server is down: a worker group killed and started
    again binds its metrics port only after its workers have connected, and a connection
    that took the port leaves the group without metrics."""
    try:
        low = int(EPHEMERAL_RANGE.read_text().split()[0])
    except (OSError, ValueError, IndexError):
        low = 32_768
    return range(LOWEST_SERVER_PORT, max(low, LOWEST_SERVER_PORT + 10_000))


def free_port_block(size: int, avoid: frozenset[int] = frozenset()) -> int:
    """The first of `size` consecutive ports that a server may bind now, outside `avoid`
    and below the ephemeral range (`server_ports`)."""
    ports = server_ports()
    for _ in range(200):
        first = random.randrange(ports.start, ports.stop - size)
        block = range(first, first + size)
        if avoid.intersection(block):
            continue
        if all(_bindable(port) for port in block):
            return first
    raise RuntimeError(f"no block of {size} free ports in {ports.start}-{ports.stop - 1}")


def _bindable(port: int) -> bool:
    with socket.socket() as probe:
        # as the servers bind: a port held only by closed connections that linger in
        # TIME_WAIT (thousands after a load test) is free to them
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True
