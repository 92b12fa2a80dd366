"""`vaultcraft.client` works with httpx alone: none of the server's dependencies load."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SERVER_ONLY = (
    "aiohttp",
    "sqlalchemy",
    "dramatiq",
    "psycopg",
    "redis",
    "pydantic",
    "structlog",
    "alembic",
    "prometheus_client",
    "orjson",
    "uvloop",
    "pika",
    "cryptography",
)

# Run in a fresh interpreter in which every server-only package fails to import, as if
# only httpx were installed; the client must still import, build and check a signature.
PROBE = f"""
import importlib.abc, sys
BLOCKED = {SERVER_ONLY!r}
class Block(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in BLOCKED:
            raise ImportError(f"{{name}} is not installed here")
        return None
sys.meta_path.insert(0, Block())
import hashlib, hmac, time
from vaultcraft.client import VaultCraftClient, verify_signature
VaultCraftClient("http://127.0.0.1:9").close()
t = int(time.time())
mac = hmac.new(b"whsec_x", f"{{t}}.".encode() + b"{{}}", hashlib.sha256).hexdigest()
assert verify_signature("whsec_x", f"t={{t}},v1={{mac}}", b"{{}}")
print(sorted(m for m in sys.modules if m.split(".")[0] in BLOCKED))
"""


def test_the_client_imports_and_works_without_the_server_dependencies() -> None:
    """With aiohttp, SQLAlchemy, Dramatiq, psycopg, Redis, pydantic... unimportable,
    the client still imports, constructs and verifies a signature, loading none of them."""
    result = subprocess.run(
        [sys.executable, "-c", PROBE], cwd=ROOT, capture_output=True, text=True, check=False
    )

    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"


def test_importing_the_package_root_loads_nothing_heavy() -> None:
    """`import vaultcraft` (which the client's import runs first) is only a docstring."""
    result = subprocess.run(
        [
            sys.executable,
            "-c",
            "import sys, vaultcraft.client;"
            " print(sorted({m.split('.')[0] for m in sys.modules} & set(sys.argv[1:])))",
            *SERVER_ONLY,
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    )

    assert result.stdout.strip() == "[]"
