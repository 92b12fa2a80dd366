"""The load generator's HTTP/1.1 client against a real aiohttp server on uvloop."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

import pytest
import uvloop
from aiohttp import web

from bench.loadgen import KeepAlive


async def _serve(
    handler: Callable[[web.Request], Awaitable[web.StreamResponse]],
) -> tuple[web.AppRunner, str]:
    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", handler)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    return runner, f"http://127.0.0.1:{port}"


def test_answers_arrive_in_order_over_one_connection_and_a_closed_one_is_reopened() -> None:
    peers: list[object] = []

    async def handler(request: web.Request) -> web.Response:
        peers.append(request.transport and request.transport.get_extra_info("peername"))
        body = await request.read()
        if request.path == "/close":
            return web.Response(body=b"bye", headers={"Connection": "close"})
        big = b"x" * 200_000 if request.path == "/big" else b""
        return web.Response(status=202, body=body + request.headers.get("X-Tag", "").encode() + big)

    async def main() -> None:
        runner, url = await _serve(handler)
        try:
            client = KeepAlive(url, {"Authorization": "Bearer t"})
            for n in range(5):
                status, body = await client.post("/t", b'{"n": %d}' % n, {"X-Tag": str(n)})
                assert (status, body) == (202, b'{"n": %d}%d' % (n, n))
            status, body = await client.get("/big")
            assert status == 202 and len(body) == 200_000
            assert len(set(peers)) == 1  # one keep-alive connection so far
            assert await client.get("/close") == (200, b"bye")
            assert client.closed
            assert (await client.get("/again"))[0] == 202
            assert len(set(peers)) == 2
            client.close()
        finally:
            await runner.cleanup()

    uvloop.run(main())


def test_a_connection_cut_mid_answer_raises_and_the_next_request_reconnects() -> None:
    async def main() -> None:
        cut = True

        async def answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            nonlocal cut
            while await reader.readuntil(b"\r\n\r\n"):
                if cut:
                    cut = False
                    writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc")
                    await writer.drain()
                    writer.close()
                    return
                writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
                await writer.drain()

        server = await asyncio.start_server(answer, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        client = KeepAlive(f"http://127.0.0.1:{port}", {})
        with pytest.raises(ConnectionError):
            await client.get("/")
        assert await client.get("/") == (200, b"ok")
        client.close()
        server.close()
        await server.wait_closed()

    uvloop.run(main())
