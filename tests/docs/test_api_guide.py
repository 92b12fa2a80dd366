"""docs/api-guide.md cannot rot: its examples run against the real system.

Every `sh` block runs, in order, in one bash (so variables carry over) with real `curl`
and `jq` against a gateway, posting workers, relay and webhook workers; the `text` block
after an `sh` block is what that block must print. The `python` block (the signature
check) is run on a delivery a webhook worker really made to a local endpoint.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from tests.support.stack import Stack

GUIDE = Path(__file__).resolve().parents[2] / "docs" / "api-guide.md"
_BLOCK = re.compile(r"^```(\w+)\n(.*?)^```$", re.MULTILINE | re.DOTALL)
_MARK = "@@guide-block-{}@@"

pytestmark = pytest.mark.skipif(
    not (shutil.which("curl") and shutil.which("jq")), reason="the guide's examples use curl and jq"
)


@dataclass
class Inbox:
    """What a webhook endpoint received: (headers, raw body) per POST."""

    received: list[tuple[dict[str, str], bytes]] = field(default_factory=list)


def _receiver(inbox: Inbox) -> type[BaseHTTPRequestHandler]:
    class Receiver(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
            inbox.received.append((dict(self.headers.items()), body))
            self.send_response(204)
            self.end_headers()

        def log_message(self, format: str, *args: Any) -> None:
            return

    return Receiver


@pytest.fixture(scope="module")
def endpoint() -> Iterator[tuple[str, Inbox]]:
    inbox = Inbox()
    server = ThreadingHTTPServer(("127.0.0.1", 0), _receiver(inbox))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/hooks", inbox
    server.shutdown()
    thread.join(timeout=10)


@pytest.fixture(scope="module")
def stack(
    database_url: str, redis_url: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Stack]:
    with Stack(
        database_url,
        redis_url,
        tmp_path_factory.mktemp("guide"),
        processes=("gateway", "worker", "relay", "webhooks"),
        extra_env={"VAULTCRAFT_ALLOW_PRIVATE_WEBHOOKS": "1"},
    ) as running:
        yield running


def _blocks() -> list[tuple[str, str]]:
    return [(lang, code) for lang, code in _BLOCK.findall(GUIDE.read_text())]


def _script(shell: list[str], state: Path) -> str:
    parts = [f"echo '{_MARK.format(n)}'\n{code}" for n, code in enumerate(shell)]
    parts.append(f"printf '%s' \"$WEBHOOK_SECRET\" > '{state / 'secret'}'\n")
    return "\n".join(parts)


def _expected_outputs(blocks: list[tuple[str, str]]) -> dict[int, str]:
    """For the n-th `sh` block, the `text` block right after it, if any."""
    expected, n = {}, -1
    for lang, code in blocks:
        if lang == "sh":
            n += 1
        elif lang == "text" and n >= 0 and n not in expected:
            expected[n] = code
    return expected


def test_every_shell_example_prints_what_the_guide_says(
    stack: Stack, endpoint: tuple[str, Inbox], tmp_path: Path
) -> None:
    blocks = _blocks()
    shell = [code for lang, code in blocks if lang == "sh"]
    assert len(shell) >= 10
    env = {
        **stack.env,
        "API": f"{stack.base_url}/api/v1",
        "WEBHOOK_URL": endpoint[0],
    }
    run = subprocess.run(
        ["bash", "-euo", "pipefail", "-c", _script(shell, tmp_path)],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    outputs = re.split(r"^@@guide-block-\d+@@\n", run.stdout, flags=re.MULTILINE)[1:]
    assert len(outputs) == len(shell)
    for n, text in _expected_outputs(blocks).items():
        assert outputs[n] == text, f"block {n}:\n{shell[n]}"
    _check_signature_example(blocks, (tmp_path / "secret").read_text(), endpoint[1])


def _check_signature_example(blocks: list[tuple[str, str]], secret: str, inbox: Inbox) -> None:
    (code,) = [code for lang, code in blocks if lang == "python"]
    namespace: dict[str, Any] = {}
    exec(compile(code, str(GUIDE), "exec"), namespace)  # noqa: S102 - the guide's own example
    verify = namespace["verify_signature"]
    deadline = time.monotonic() + 30
    while not inbox.received and time.monotonic() < deadline:
        time.sleep(0.1)
    headers, body = inbox.received[0]
    signature = headers["VaultCraft-Signature"]
    assert headers["VaultCraft-Event-Type"] == "transfer.completed"
    assert verify(secret, signature, body) is True
    assert verify(secret, signature, body + b" ") is False
    assert verify("whsec_" + "x" * 43, signature, body) is False
