"""The load generator: a separate process driving the public HTTP API on uvloop.

It runs in its own process so its CPU is not the gateway's, and it reports that CPU time
(getrusage) so the results say what the load itself cost on a shared machine: on 2 cores
every CPU-second it spends is one the system under test does not get. Closed loop
(`closed`, `bulk`): C clients each send the next request when the last one answered, each
over its own keep-alive connection (`KeepAlive`, a minimal HTTP/1.1 client on a protocol:
a fifth of aiohttp's client CPU per request, and about a tenth less than the same client
on asyncio streams).
Open loop (`open`): requests start on a fixed schedule whatever the answers, and latency is
counted from the scheduled start, so a slow server cannot hide its queueing
(coordinated omission).
"""

from __future__ import annotations

import asyncio
import math
import multiprocessing
import random
import resource
import time
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from datetime import datetime
from multiprocessing.process import BaseProcess
from typing import Any, cast

import orjson
import uvloop
from yarl import URL

TRANSFER_PATH = "/api/v1/transactions/transfer"
BATCH_PATH = "/api/v1/transactions/batch"
LONG_POLL_S = 5
REQUEST_TIMEOUT_S = LONG_POLL_S + 55
"""Longest wait for one answer, a long poll's included."""
GIVE_UP_S = 120  # an open-loop transfer still PENDING this long is counted as not final


@dataclass(frozen=True)
class LoadSpec:
    """What to send: `mode` is `closed`, `bulk` or `open`; `tag` marks every transfer sent."""

    mode: str
    base_url: str
    token: str
    wallet_ids: list[str]
    currency: str
    tag: str
    concurrency: int
    duration_s: float
    rate: float = 0.0
    batch_size: int = 1000
    submit_wait_s: int = 0
    """Open loop: submit with `?wait=` this long, one request a transfer while it is decided
    in time; 0 submits, then long-polls `GET /transactions/{id}?wait=` (two requests)."""


@dataclass
class LoadResult:
    """What was sent and answered, the client-side latencies, and the generator's own CPU."""

    mode: str
    requests: int = 0
    transfers_submitted: int = 0
    transfers_accepted: int = 0
    status_codes: dict[str, int] = field(default_factory=dict)
    client_errors: int = 0
    first_submit: float = 0.0
    last_answer: float = 0.0
    final_statuses: dict[str, int] = field(default_factory=dict)
    latency_ms: dict[str, float | None] = field(default_factory=dict)
    accept_latency_ms: dict[str, float | None] = field(default_factory=dict)
    server_latency_ms: dict[str, float | None] = field(default_factory=dict)
    before_created_ms: dict[str, float | None] = field(default_factory=dict)
    """From a submit's scheduled time to its transfer's `created_at` (the intake's statement)."""
    after_posted_ms: dict[str, float | None] = field(default_factory=dict)
    """From a transfer's `posted_at` (its posting batch's start) to its final answer's arrival."""
    cpu_user_s: float = 0.0
    cpu_system_s: float = 0.0

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def percentile(values: Sequence[float], q: float) -> float | None:
    """Nearest-rank percentile (q in 0..100]: the smallest value with q% of values <= it."""
    if not values:
        return None
    if not 0 < q <= 100:
        raise ValueError("q must be in (0, 100]")
    ordered = sorted(values)
    rank = math.ceil(q / 100 * len(ordered))
    return ordered[max(rank, 1) - 1]


def summarize(values: Sequence[float]) -> dict[str, float | None]:
    """p50, p90, p99 and max of a list of latencies, rounded to 0.1."""
    out: dict[str, float | None] = {"count": float(len(values))}
    for name, q in (("p50", 50.0), ("p90", 90.0), ("p99", 99.0), ("max", 100.0)):
        value = percentile(values, q)
        out[name] = None if value is None else round(value, 1)
    return out


def random_amount() -> str:
    """A small amount (0.01..0.99) so funded wallets never run out."""
    return f"0.{random.randint(1, 99):02d}"


def transfer_body(spec: LoadSpec) -> dict[str, Any]:
    """A transfer of a random small amount between two random wallets of the load."""
    src, dst = random.sample(spec.wallet_ids, 2)
    return {
        "source_wallet_id": src,
        "destination_wallet_id": dst,
        "amount": random_amount(),
        "currency": spec.currency,
        "description": spec.tag,
    }


class KeepAlive:
    """One HTTP/1.1 keep-alive connection answering one request at a time.

    Enough for the load: the gateway answers with `Content-Length` bodies. A closed
    connection is opened again on the next request. The answer is read by a protocol
    (`_Answers`) that completes one future, so a request costs no task, stream or timer
    of its own: on two cores every CPU-second the load spends is one the system under test
    does not get.
    """

    def __init__(self, base_url: str, headers: dict[str, str]) -> None:
        url = URL(base_url)
        self.host, self.port = url.host or "127.0.0.1", url.port or 80
        fixed = {"Host": f"{self.host}:{self.port}", **headers}
        self.fixed = "".join(f"{k}: {v}\r\n" for k, v in fixed.items()).encode()
        self.wire: _Answers | None = None

    async def post(self, path: str, body: bytes, headers: dict[str, str]) -> tuple[int, bytes]:
        extra = "".join(f"{k}: {v}\r\n" for k, v in headers.items())
        head = f"POST {path} HTTP/1.1\r\nContent-Length: {len(body)}\r\n{extra}".encode()
        return await self._exchange(head + self.fixed + b"\r\n" + body)

    async def get(self, path: str) -> tuple[int, bytes]:
        return await self._exchange(f"GET {path} HTTP/1.1\r\n".encode() + self.fixed + b"\r\n")

    @property
    def closed(self) -> bool:
        return self.wire is None or self.wire.transport is None

    async def _exchange(self, request: bytes) -> tuple[int, bytes]:
        if self.wire is None or self.wire.transport is None:
            loop = asyncio.get_running_loop()
            _, self.wire = await loop.create_connection(_Answers, self.host, self.port)
        try:
            status, answer, close = await self.wire.send(request)
        except (ConnectionError, ValueError) as exc:
            self.close()
            raise ConnectionError(f"no answer: {exc}") from None
        if close:
            self.close()
        return status, answer

    def close(self) -> None:
        if self.wire is not None:
            self.wire.close()
        self.wire = None


class _Answers(asyncio.Protocol):
    """The reading side of `KeepAlive`: collects bytes until an answer's head and its
    `Content-Length` of body are in, then completes the waiting request's future."""

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.buffer = bytearray()
        self.waiter: asyncio.Future[tuple[int, bytes, bool]] | None = None
        self.head: tuple[int, int, bool] | None = None
        self.body_at = 0

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's is not a subclass

    def send(self, request: bytes) -> asyncio.Future[tuple[int, bytes, bool]]:
        if self.transport is None:
            raise ConnectionError("connection closed")
        self.waiter = asyncio.get_running_loop().create_future()
        self.transport.write(request)
        return self.waiter

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        waiter = self.waiter
        if waiter is None or waiter.done():
            return
        if self.head is None:
            end = self.buffer.find(b"\r\n\r\n")
            if end < 0:
                return
            try:
                self.head = _parse_head(bytes(self.buffer[: end + 4]))
            except (ValueError, IndexError) as exc:
                waiter.set_exception(ValueError(f"unreadable answer head: {exc}"))
                return
            self.body_at = end + 4
        status, length, close = self.head
        done = self.body_at + length
        if len(self.buffer) < done:
            return
        answer = bytes(self.buffer[self.body_at : done])
        del self.buffer[:done]
        self.head = None
        waiter.set_result((status, answer, close))

    def connection_lost(self, exc: Exception | None) -> None:
        self.transport = None
        if self.waiter is not None and not self.waiter.done():
            self.waiter.set_exception(ConnectionError("connection closed mid-answer"))

    def close(self) -> None:
        if self.transport is not None:
            self.transport.close()
        self.transport = None


def _parse_head(raw: bytes) -> tuple[int, int, bool]:
    """Status, Content-Length and whether the server closes, from a response head."""
    lines = raw.decode("latin-1").split("\r\n")
    status = int(lines[0].split(" ", 2)[1])
    fields = {}
    for line in lines[1:]:
        name, _, value = line.partition(":")
        fields[name.strip().lower()] = value.strip()
    if "content-length" not in fields:
        raise ValueError("an answer without Content-Length")
    return status, int(fields["content-length"]), fields.get("connection", "").lower() == "close"


class _Driver:
    def __init__(self, spec: LoadSpec) -> None:
        self.spec = spec
        self.idle: list[KeepAlive] = []
        """The open loop's connections between requests; one more is opened whenever
        every connection is busy, as a connection pool without a limit does."""
        self.result = LoadResult(mode=spec.mode)
        self.codes: Counter[str] = Counter()
        self.finals: Counter[str] = Counter()
        self.latencies: list[float] = []
        self.accept_latencies: list[float] = []
        self.server_latencies: list[float] = []
        self.before_created: list[float] = []
        self.after_posted: list[float] = []

    def _mark_submit(self) -> None:
        if not self.result.first_submit:
            self.result.first_submit = time.monotonic()

    async def _post(self, path: str, body: dict[str, Any], key: str | None, conn: KeepAlive) -> Any:
        headers = {"Idempotency-Key": key} if key else {}
        self._mark_submit()
        self.result.requests += 1
        try:
            async with asyncio.timeout(REQUEST_TIMEOUT_S):
                status, raw = await conn.post(path, orjson.dumps(body), headers)
            self.codes[str(status)] += 1
            self.result.last_answer = time.monotonic()
            return orjson.loads(raw) if status in (200, 202) else None
        except (TimeoutError, OSError, orjson.JSONDecodeError):
            conn.close()
            self.result.client_errors += 1
            await asyncio.sleep(0.05)
            return None

    def _connection(self) -> KeepAlive:
        return KeepAlive(self.spec.base_url, request_headers(self.spec))

    async def closed_client(self, number: int, deadline: float) -> None:
        conn = self._connection()
        i = 0
        while time.monotonic() < deadline:
            key = f"{self.spec.tag}-{number}-{i}"
            i += 1
            self.result.transfers_submitted += 1
            if await self._post(TRANSFER_PATH, transfer_body(self.spec), key, conn) is not None:
                self.result.transfers_accepted += 1
        conn.close()

    async def bulk_client(self, number: int, deadline: float) -> None:
        conn = self._connection()
        i = 0
        while time.monotonic() < deadline:
            transfers = []
            for _ in range(self.spec.batch_size):
                key = f"{self.spec.tag}-{number}-{i}"
                i += 1
                transfers.append({"idempotency_key": key, **transfer_body(self.spec)})
            self.result.transfers_submitted += len(transfers)
            answer = await self._post(BATCH_PATH, {"transfers": transfers}, None, conn)
            if isinstance(answer, dict):
                self.result.transfers_accepted += len(answer.get("data", []))
        conn.close()

    def _take(self) -> KeepAlive:
        return self.idle.pop() if self.idle else self._connection()

    def _give_back(self, conn: KeepAlive) -> None:
        if not conn.closed:
            self.idle.append(conn)

    async def _long_poll(self, tx: dict[str, Any]) -> dict[str, Any]:
        """The transfer as `GET ...?wait=` answers: final, or still PENDING after the wait."""
        conn = self._take()
        path = f"/api/v1/transactions/{tx['id']}?wait={LONG_POLL_S}"
        try:
            async with asyncio.timeout(REQUEST_TIMEOUT_S):
                status, raw = await conn.get(path)
            if status == 200:
                answer: dict[str, Any] = orjson.loads(raw)
                return answer
        except (TimeoutError, OSError, orjson.JSONDecodeError):
            conn.close()
            self.result.client_errors += 1
            await asyncio.sleep(0.05)
        finally:
            self._give_back(conn)
        return tx

    async def open_one(self, number: int, scheduled: float) -> None:
        key = f"{self.spec.tag}-{number}"
        self.result.transfers_submitted += 1
        conn = self._take()
        wait_s = self.spec.submit_wait_s
        path = f"{TRANSFER_PATH}?wait={wait_s}" if wait_s else TRANSFER_PATH
        try:
            tx = await self._post(path, transfer_body(self.spec), key, conn)
        finally:
            self._give_back(conn)
        if not isinstance(tx, dict) or "id" not in tx:
            return
        if not wait_s:  # a submit that waits answers when decided: no separate `202` time
            self.accept_latencies.append((time.monotonic() - scheduled) * 1000)
        self.result.transfers_accepted += 1
        while tx.get("status") == "PENDING" and time.monotonic() - scheduled < GIVE_UP_S:
            tx = await self._long_poll(tx)
        answered = time.monotonic()
        self.latencies.append((answered - scheduled) * 1000)
        self.finals[str(tx.get("status"))] += 1
        if tx.get("posted_at") and tx.get("created_at"):
            posted = datetime.fromisoformat(tx["posted_at"]).timestamp()
            created = datetime.fromisoformat(tx["created_at"]).timestamp()
            self.server_latencies.append((posted - created) * 1000)
            wall = time.time() - answered  # this machine's wall clock at monotonic zero
            self.before_created.append((created - (wall + scheduled)) * 1000)
            self.after_posted.append((wall + answered - posted) * 1000)

    async def open_loop(self) -> None:
        started = time.monotonic()
        total = int(self.spec.rate * self.spec.duration_s)
        tasks: list[asyncio.Task[None]] = []
        for n in range(total):
            scheduled = started + n / self.spec.rate
            delay = scheduled - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            tasks.append(asyncio.create_task(self.open_one(n, scheduled)))
        await asyncio.gather(*tasks)

    async def run(self) -> LoadResult:
        deadline = time.monotonic() + self.spec.duration_s
        if self.spec.mode == "open":
            await self.open_loop()
        else:
            client = self.closed_client if self.spec.mode == "closed" else self.bulk_client
            await asyncio.gather(*(client(n, deadline) for n in range(self.spec.concurrency)))
        self.result.status_codes = dict(self.codes)
        self.result.final_statuses = dict(self.finals)
        self.result.latency_ms = summarize(self.latencies)
        self.result.accept_latency_ms = summarize(self.accept_latencies)
        self.result.server_latency_ms = summarize(self.server_latencies)
        self.result.before_created_ms = summarize(self.before_created)
        self.result.after_posted_ms = summarize(self.after_posted)
        return self.result


async def drive(spec: LoadSpec) -> LoadResult:
    """Send the load described by `spec` over keep-alive connections (`KeepAlive`)."""
    return await _Driver(spec).run()


def request_headers(spec: LoadSpec) -> dict[str, str]:
    """The headers every request of the load carries."""
    return {"Authorization": f"Bearer {spec.token}", "Content-Type": "application/json"}


def _child(spec: LoadSpec, conn: Any) -> None:
    """Drive the load and report it, with the CPU the load took: the child's start-up (a
    spawned process imports the parent's main module, `bench.run` and all it imports,
    about a second of CPU) is left out."""
    before = resource.getrusage(resource.RUSAGE_SELF)
    result = uvloop.run(drive(spec))
    usage = resource.getrusage(resource.RUSAGE_SELF)
    result.cpu_user_s = round(usage.ru_utime - before.ru_utime, 2)
    result.cpu_system_s = round(usage.ru_stime - before.ru_stime, 2)
    conn.send(result)
    conn.close()


def run_load(spec: LoadSpec, on_tick: Callable[[float], None] | None = None) -> LoadResult:
    """Run `spec` in a fresh process and wait for its result, calling on_tick(elapsed_s)."""
    ctx = multiprocessing.get_context("spawn")
    parent, child = ctx.Pipe(duplex=False)
    proc = ctx.Process(target=_child, args=(spec, child), name=f"loadgen-{spec.tag}")
    started = time.monotonic()
    proc.start()
    child.close()
    with ends_with_the_run(proc):
        while not parent.poll(0.5):
            if on_tick is not None:
                on_tick(time.monotonic() - started)
            if not proc.is_alive() and not parent.poll(0):
                raise RuntimeError(f"load generator exited with code {proc.exitcode}")
        try:
            result: LoadResult = parent.recv()
        except EOFError as exc:
            raise RuntimeError(f"load generator exited with code {proc.exitcode}") from exc
    return result


@contextmanager
def ends_with_the_run(proc: BaseProcess) -> Iterator[None]:
    """Wait for the load's process at the end of the block; if the block ends in an error,
    Ctrl-C or SIGTERM, stop it first, instead of letting it drive a system that is gone
    (and the interpreter's exit wait for it)."""
    try:
        yield
    except BaseException:
        proc.terminate()
        raise
    finally:
        proc.join()
