"""Free local TCP ports, for processes started by tests and the benchmark."""

from __future__ import annotations

import socket


def free_port() -> int:
    """A TCP port nobody listens on right now (the kernel picks it)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def free_port_block(size: int = 3, avoid: frozenset[int] = frozenset()) -> int:
    """The first of `size` consecutive free ports: the metrics ports of worker, relay, scheduler."""
    for _ in range(100):
        first = free_port()
        ports = range(first, first + size)
        if avoid.intersection(ports):
            continue
        try:
            for port in ports[1:]:
                with socket.socket() as probe:
                    # as the servers bind: a port held only by closed connections that
                    # linger in TIME_WAIT (thousands after a load test) is free to them
                    probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                    probe.bind(("127.0.0.1", port))
        except OSError:
            continue
        return first
    raise RuntimeError(f"no block of {size} free ports")
