"""`serve()` runs the gateway on its configured port and stops cleanly on SIGTERM."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import requests

from runtime.ports import free_port_block
from tests.support.fixtures import JWT_SECRET


def test_serve_answers_then_stops_on_sigterm(
    database_url: str, redis_url: str, tmp_path: Path
) -> None:
    port = free_port_block(1)
    env = {
        **os.environ,
        "DATABASE_URL": database_url,
        "REDIS_URL": redis_url,
        "VAULTCRAFT_DATA_DIR": str(tmp_path),
        "VAULTCRAFT_JWT_SECRET": JWT_SECRET,
        "VAULTCRAFT_HTTP_PORT": str(port),
        "VAULTCRAFT_BCRYPT_ROUNDS": "4",
    }
    code = (
        "from gateway.server import serve; from runtime.settings import Settings; "
        "serve(Settings.from_env())"
    )
    proc = subprocess.Popen([sys.executable, "-c", code], env=env)
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                resp = requests.get(f"http://127.0.0.1:{port}/ready", timeout=2)
                break
            except requests.ConnectionError:
                assert time.monotonic() < deadline, "the gateway did not start"
                assert proc.poll() is None, "the gateway exited"
                time.sleep(0.1)
        assert resp.status_code == 200, resp.text
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=20) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
