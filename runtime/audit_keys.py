"""The Ed25519 key that signs audit chain heads, kept outside the database.

`VAULTCRAFT_AUDIT_SIGNING_KEY` is a file (PEM, or base64 of the 32 raw private bytes) or
the base64 itself; unset, a key is generated once into the data dir (like the JWT
secret). Verification needs only the public key: `VAULTCRAFT_AUDIT_PUBLIC_KEY` (file or
base64 of the 32 raw public bytes), or else the one derived from the signing key.

Rotating the key: the public keys of earlier signing keys go in
`VAULTCRAFT_AUDIT_RETIRED_KEYS` (comma-separated, each a file or base64 as above), and the
heads they signed keep verifying (`trusted_keys`). A key left out of that list is no longer
trusted: the heads it signed are then reported as forged.
"""

from __future__ import annotations

import base64
import binascii
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import (
    Encoding,
    NoEncryption,
    PrivateFormat,
    PublicFormat,
    load_pem_private_key,
    load_pem_public_key,
)

from runtime.settings import Settings, stored_secret

KEY_FILE = "audit_signing_key"


def signing_key(settings: Settings) -> Ed25519PrivateKey:
    configured = settings.audit_signing_key
    if not configured:
        return _private(stored_secret(settings.data_dir, KEY_FILE, _new_key).encode())
    return _private(_material(configured))


def public_key(settings: Settings) -> Ed25519PublicKey:
    if not settings.audit_public_key:
        return signing_key(settings).public_key()
    return _public(settings.audit_public_key, "VAULTCRAFT_AUDIT_PUBLIC_KEY")


def trusted_keys(settings: Settings) -> list[Ed25519PublicKey]:
    """The keys `vaultcraft verify` believes: the current one, then every retired one."""
    retired = [v.strip() for v in settings.audit_retired_keys.split(",") if v.strip()]
    return [public_key(settings), *(_public(v, "VAULTCRAFT_AUDIT_RETIRED_KEYS") for v in retired)]


def encode_public(key: Ed25519PublicKey) -> str:
    """Base64 of the raw public bytes: the form the public-key settings take."""
    return base64.b64encode(key.public_bytes(Encoding.Raw, PublicFormat.Raw)).decode()


def _public(value: str, name: str) -> Ed25519PublicKey:
    raw = _material(value)
    if raw.startswith(b"-----"):
        key = load_pem_public_key(raw)
        if not isinstance(key, Ed25519PublicKey):
            raise SystemExit(f"{name} holds a key that is not an Ed25519 key")
        return key
    return Ed25519PublicKey.from_public_bytes(_base64(raw, name))


def encode_private(key: Ed25519PrivateKey) -> str:
    """Base64 of the raw private bytes: the form VAULTCRAFT_AUDIT_SIGNING_KEY takes."""
    raw = key.private_bytes(Encoding.Raw, PrivateFormat.Raw, NoEncryption())
    return base64.b64encode(raw).decode()


def _new_key() -> str:
    return encode_private(Ed25519PrivateKey.generate())


def _material(value: str) -> bytes:
    """A file's contents if `value` names a file, else `value` itself."""
    path = Path(value)
    try:
        if path.is_file():
            return path.read_bytes().strip()
    except OSError:
        pass  # a long base64 string is no path at all
    return value.strip().encode()


def _private(raw: bytes) -> Ed25519PrivateKey:
    if raw.startswith(b"-----"):
        key = load_pem_private_key(raw, password=None)
        if not isinstance(key, Ed25519PrivateKey):
            raise SystemExit("VAULTCRAFT_AUDIT_SIGNING_KEY is not an Ed25519 key")
        return key
    return Ed25519PrivateKey.from_private_bytes(_base64(raw, "VAULTCRAFT_AUDIT_SIGNING_KEY"))


def _base64(raw: bytes, name: str) -> bytes:
    try:
        decoded = base64.b64decode(raw, validate=True)
    except binascii.Error as exc:
        raise SystemExit(f"{name} is neither a key file nor base64") from exc
    if len(decoded) != 32:
        raise SystemExit(f"{name} must hold 32 raw key bytes, got {len(decoded)}")
    return decoded
